"""Residual gain (cnref.measure.gain) on the smoke base: the amplified ControlNet's residuals are exactly g times its
own; at g = 1 it samples bit for bit what the ControlNet samples, at g = 2 what Sec. 3.4's per-connection strength 2
samples (another path through the code); the study on smoke runs reproduces each checkpoint's own last validation."""
import numpy as np
import pytest
import torch

from cnref.lab.gain import run_gain
from cnref.lab.results import load_samples, study_images
from cnref.lab.runner import run
from cnref.measure.gain import GAINS, amplified
from cnref.mini.data import VAL_SEED, dataset
from cnref.mini.sample import generate
from cnref.mini.shipping import load_base
from cnref.paper.control import connection_scales
from cnref.paper.controlnet import ControlNet, ControlNetConfig

from conftest import inputs, randomize_zero_convs


@pytest.fixture(scope="module")
def base_and_net():
    base = load_base("smoke", "fill50k")
    torch.manual_seed(0)
    net = ControlNet(base.unet, ControlNetConfig()).eval()
    randomize_zero_convs(net)          # a trained-looking net: zero convs that are not zero
    return base, net


def test_residuals_are_exactly_g_times_and_the_net_is_untouched(base_and_net):
    base, net = base_and_net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = inputs(base.unet)
    with torch.no_grad():
        r = net(*x).residuals
        for g in GAINS:
            assert all(torch.equal(a, g * b) for a, b in zip(amplified(net, g)(*x).residuals, r))
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_gain_1_is_the_ordinary_sample_and_gain_2_is_strength_2(base_and_net):
    base, net = base_and_net
    b = dataset("fill50k", size=base.cfg.size, cond_factor=1, seed=VAL_SEED).batch(range(2))
    prompts, cond = b["prompt"], b["cond"]
    sample = lambda n, **kw: generate(base, prompts, [(n, cond)], steps=3, beta=3.0, seed=5, **kw)
    assert torch.equal(sample(amplified(net, 1.0)), sample(net))
    assert torch.equal(sample(amplified(net, 2.0)), sample(net, scales=[connection_scales("uniform", 2.0)]))
    assert not torch.equal(sample(amplified(net, 2.0)), sample(net))


@pytest.mark.slow
def test_the_study_reproduces_each_checkpoints_own_validation_at_gain_1(tmp_path):
    from cnref.lab.runner import write_validation_bounds
    write_validation_bounds("smoke", "fill50k", tmp_path)
    runs = run("before_jump", "smoke", [0], root=tmp_path, log=lambda *_: None)
    out = run_gain("smoke", 0, tmp_path, log=lambda *_: None)
    for r in runs:
        v = r["variant"]
        assert set(out["results"]) >= {f"{v}_g{g:g}" for g in GAINS}
        assert out["recorded"][v]["step"] == r["config"]["steps"]         # the last validation is the last step
        assert out["results"][f"{v}_g1"]["iou"] == out["recorded"][v]["iou"] == r["history"][-1]["iou"]
        assert out["results"][f"{v}_g1"]["use_loss_gap"] == r["history"][-1]["use_loss_gap"]
        # and its kept images are the run's own last validation images, bit for bit
        assert np.array_equal(study_images(out, tmp_path)[f"{v}_g1"], load_samples(r, tmp_path)["samples"][-1])
        assert not np.array_equal(study_images(out, tmp_path)[f"{v}_g4"], study_images(out, tmp_path)[f"{v}_g1"])
    assert out["results"]["convergence_level"]["iou"] > 0
    # each checkpoint is the first steps of the default recipe's instrumented run (learning_rate's lr_1e-4), here
    # validated at every step (validation draws nothing that training uses); the weights' own figures agree (the
    # loss, a mean since the last validation, depends on the spacing)
    full = run("learning_rate", "smoke", [0], ["lr_1e-4"], root=tmp_path, sets=("val_every=1",),
               log=lambda *_: None)[0]
    at = {h["step"]: h for h in full["history"]}
    for r in runs:
        assert r["history"][-1]["step"] in at
        assert all(h[k] == at[h["step"]][k] for h in r["history"] for k in ("iou", "use_loss_gap", "use_in_disc"))
    assert run_gain("smoke", 0, tmp_path, log=lambda *_: None)["provenance"] == out["provenance"]     # resumable
