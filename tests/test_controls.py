"""One interface for ControlNet and its successors: each kind trains through the same loop, samples through the
same guidance, and is evaluated the same way; T2I-Adapter's features are computed once per generation."""
import numpy as np
import pytest
import torch

from cnref.controlnet import ControlNetConfig
from cnref.controls import KINDS, T2IAdapterControl, controlled_eps, make_control, once
from cnref.evaluate import QUALITY_SET
from cnref.lab.results import load_results
from cnref.lab.runner import prepare_smoke
from cnref.sample import generate
from cnref.shipping import load_base


def test_a_successor_refuses_the_controlnet_only_options():
    with pytest.raises(ValueError, match="kind"):
        ControlNetConfig(kind="controlnext", lite=True)
    with pytest.raises(ValueError, match="kind"):
        ControlNetConfig(kind="adapter")


@torch.no_grad()
def test_t2i_adapter_runs_once_per_generation_and_samples_as_if_run_every_step():
    base = load_base("smoke")
    net = make_control(base.unet, ControlNetConfig(kind="t2i_adapter"))
    calls = []
    net.adapter.register_forward_hook(lambda *a: calls.append(1))
    cond = torch.rand(2, 3, base.cfg.size, base.cfg.size)
    images = generate(base, ["a", "b"], [(net, cond)], steps=3, beta=3.0)
    assert len(calls) == 1                                     # 3 steps, 2 CFG branches: one adapter call
    z, t, c = torch.randn(4, 3, base.cfg.size, base.cfg.size), torch.tensor([3, 3, 9, 9]), base.encode_prompt(["a"] * 4)
    torch.testing.assert_close(controlled_eps(net, base.unet, z, t, c, once(net, cond)),
                               controlled_eps(net, base.unet, z, t, c, cond))    # features repeated = recomputed
    assert images.shape == (2, 3, base.cfg.size, base.cfg.size)


@pytest.mark.slow
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "controlnet"])
def test_every_successor_trains_and_is_evaluated_like_the_controlnet(kind):
    # in smoke mode's shared folder: notebook 20's smoke run then reads these instead of training its own
    root = prepare_smoke("successors", names=[kind], log=lambda *_: None)
    (r,) = [r for r in load_results("successors", "smoke", root) if r["variant"] == kind]
    assert r["config"]["controlnet"]["kind"] == kind and r["complete"]
    assert [h["step"] for h in r["history"]] == [0, 2, 4]
    assert {"held_out/perfect", "held_out/none"} <= set(r["final_eval"])
    q = r["final_eval"][QUALITY_SET]           # the KID row every successor run adds: kid_n samples, perfect prompt
    assert q["n"] == r["config"]["kid_n"] == r["config"]["final_n"] and np.isfinite(q["kid"]) and q["kid_std"] >= 0
