"""The continuous measure of condition use (cnref.mini.use): exactly zero while zero convs hide the control, equal
to a brute-force evaluation of its definition, and positive once a ControlNet has learnt to use its outline."""
import pytest
import torch

from cnref.mini.data import VAL_SEED, Fill50K
from cnref.mini.presets import override, preset
from cnref.mini.shipping import load_base
from cnref.mini.train import train_controlnet
from cnref.mini.use import condition_use, use_inputs
from cnref.paper.controlnet import ControlNet, ControlNetConfig


def fixed_batch(base, n=4):
    b = Fill50K(size=base.cfg.size, seed=VAL_SEED).batch(range(n))
    return b, use_inputs(b["image"], base.encode_prompt(b["prompt"]), b["cond"], b["mask"], base.alpha_bar,
                         t_grid=(50, 500, 950))


@torch.no_grad()
def test_zero_at_init_for_zero_convs():
    base = load_base("smoke")
    _, inputs = fixed_batch(base)
    out = condition_use(ControlNet(base.unet).eval(), base.unet, inputs)
    assert out == {"use_loss_gap": 0.0, "use_in_disc": None}


@torch.no_grad()
def test_equals_its_definition_computed_sample_by_sample():
    """A Gaussian-initialised ControlNet (an effect from the start): the loss gap and the disc share against a
    loop over (t, sample) pairs that re-noises each one from the definition, z_t = sqrt(a) x_0 + sqrt(1-a) eps."""
    torch.manual_seed(0)
    base = load_base("smoke")
    b, inputs = fixed_batch(base)
    net = ControlNet(base.unet, ControlNetConfig(init="gaussian", gaussian_std=0.2)).eval()
    out = condition_use(net, base.unet, inputs, chunk=5)       # chunks that cut across timesteps
    gaps, inside, total = [], 0.0, 0.0
    for k in range(len(inputs["t"])):
        i, t, eps = k % 4, inputs["t"][k], inputs["eps"][k:k + 1]
        a = base.alpha_bar[t]
        z_t = a.sqrt() * b["image"][i:i + 1] + (1 - a).sqrt() * eps
        c_t = base.encode_prompt([b["prompt"][i]])
        with_c = net.eps(base.unet, z_t, t[None], c_t, b["cond"][i:i + 1])
        blank = net.eps(base.unet, z_t, t[None], c_t, torch.zeros_like(b["cond"][i:i + 1]))
        gaps.append(((eps - blank) ** 2).mean() - ((eps - with_c) ** 2).mean())
        d2 = ((with_c - blank) ** 2).sum(1)
        total += float(d2.sum())
        inside += float(d2[b["mask"][i]].sum())
    assert out["use_loss_gap"] == pytest.approx(float(torch.stack(gaps).mean()), abs=1e-6)
    assert out["use_in_disc"] == pytest.approx(inside / total, abs=1e-4)
    assert abs(out["use_loss_gap"]) > 1e-5 and 0 < out["use_in_disc"] < 1


@pytest.mark.slow
def test_recorded_at_every_validation_and_positive_once_trained(tmp_path):
    """A smoke ControlNet trained at a high learning rate until it uses the outline: every validation records the
    measure, zero at step 0, positive at the end, with more of the effect inside the disc than the disc's area."""
    cfg = override(preset("smoke").train, ["steps=120", "val_every=60", "lr=1e-3", "batch_size=16"])
    m = train_controlnet(cfg, tmp_path)
    h = m.history
    assert [r["step"] for r in h] == [0, 60, 120]
    assert h[0]["use_loss_gap"] == 0.0 and h[0]["use_in_disc"] is None
    area = float(m.val_batch["mask"].float().mean())
    assert h[-1]["use_loss_gap"] > 0 and h[-1]["use_in_disc"] > area, (h[-1], area)
