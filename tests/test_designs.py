"""One protocol for ControlNet and its successors: each design trains through the same loop, samples through the
same guidance, and is evaluated the same way; T2I-Adapter's features are computed once per generation; a run's
config names its design and reads back as it was meant, older result files included."""
import numpy as np
import pytest
import torch

from cnref.measure.costs import KINDS
from cnref.mini.presets import config_dict, config_from_dict, legacy_control, override, preset
from cnref.paper.controlnet import ControlNetConfig
from cnref.successors import DESIGNS, design_config
from cnref.successors.controlnext import ControlNeXtConfig, CrossNormConfig
from cnref.successors.ctrlora import BaseEmbedderConfig
from cnref.measure.evaluate import QUALITY_SET
from cnref.lab.results import load_results
from cnref.lab.runner import prepare_smoke
from cnref.mini.sample import generate
from cnref.mini.shipping import load_base

from conftest import refuses


def test_a_design_takes_only_its_own_options():
    with pytest.raises(TypeError, match="lite"):
        design_config("controlnext", lite=True)
    refuses(lambda: design_config("adapter"), f"`design`: expected one of {sorted(DESIGNS)}, received 'adapter'")
    with pytest.raises(ValueError, match="factor"):
        BaseEmbedderConfig(factor=2)              # the base's first layers read conditions at the sample's size


def test_a_design_takes_the_condition_of_the_config_it_replaces():
    """Both of the condition's fields, factor and channels, carry over to every design; an option given wins."""
    from cnref.paper.controlnet import ControlNetConfig
    like = ControlNetConfig(factor=2, cond_channels=1)
    for name in ("t2i_adapter", "controlnet_xs", "controlnext"):
        cfg = design_config(name, like=like)
        assert (cfg.factor, cfg.cond_channels) == (2, 1), name
    assert design_config("controlnet_xs", like=like, cond_channels=3).cond_channels == 3


def test_switching_design_keeps_the_condition_and_every_design_round_trips():
    cfg = override(preset("smoke").train, ["control.factor=4", "control.design=controlnext", "control.scale=1.0"])
    assert cfg.control == ControlNeXtConfig(factor=4, scale=1.0)
    for name in DESIGNS:
        c = override(preset("smoke").train, [f"control.design={name}"])
        d = config_dict(c)
        assert d["control"]["design"] == name and config_from_dict(d) == c


@pytest.mark.parametrize("old, new", [
    ({"kind": "controlnet", "lite": True}, ControlNetConfig(lite=True)),
    ({"kind": "t2i_adapter", "factor": 2}, design_config("t2i_adapter", factor=2)),
    ({"kind": "controlnet_xs", "xs_size_ratio": 0.5}, design_config("controlnet_xs", size_ratio=0.5)),
    ({"kind": "controlnext", "crossnorm_scale": 0.35}, ControlNeXtConfig(scale=0.35)),
    ({"injection": "crossnorm", "crossnorm_scale": 0.5}, CrossNormConfig(scale=0.5)),
    ({"hint": "base", "hint_trainable": False}, BaseEmbedderConfig(trainable=False)),
])
def test_older_results_name_their_design_by_kind_and_options(old, new):
    """Result files written before the protocol held one `controlnet` config for every design."""
    assert legacy_control(old) == new
    assert config_from_dict({"lr": 3e-4, "controlnet": old}).control == new


@torch.no_grad()
def test_t2i_adapter_runs_once_per_generation_and_samples_as_if_run_every_step():
    base = load_base("smoke")
    net = design_config("t2i_adapter").build(base.unet)
    calls = []
    net.adapter.register_forward_hook(lambda *a: calls.append(1))
    cond = torch.rand(2, 3, base.cfg.size, base.cfg.size)
    images = generate(base, ["a", "b"], [(net, cond)], steps=3, beta=3.0)
    assert len(calls) == 1                                     # 3 steps, 2 CFG branches: one adapter call
    z, t, c = torch.randn(4, 3, base.cfg.size, base.cfg.size), torch.tensor([3, 3, 9, 9]), base.encode_prompt(["a"] * 4)
    torch.testing.assert_close(net.eps(base.unet, z, t, c, net.once(cond)),
                               net.eps(base.unet, z, t, c, cond))    # features repeated = recomputed
    assert images.shape == (2, 3, base.cfg.size, base.cfg.size)


@pytest.mark.slow
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "controlnet"])
def test_every_successor_trains_and_is_evaluated_like_the_controlnet(kind, tmp_path):
    root = prepare_smoke("successors", names=[kind], log=lambda *_: None, root=tmp_path / "experiments")
    (r,) = [r for r in load_results("successors", "smoke", root) if r["variant"] == kind]
    assert r["config"]["control"]["design"] == kind and r["complete"]
    assert [h["step"] for h in r["history"]] == [0, 2, 4]
    assert {"held_out/perfect", "held_out/none"} <= set(r["final_eval"])
    q = r["final_eval"][QUALITY_SET]           # the KID row every successor run adds: kid_n samples, perfect prompt
    assert q["n"] == r["config"]["kid_n"] == r["config"]["final_n"] and np.isfinite(q["kid"]) and q["kid_std"] >= 0
