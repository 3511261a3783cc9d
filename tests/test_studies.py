"""Scenes as a training set and the inference-time studies, on the smoke scenes base."""
from dataclasses import replace

import pytest
import torch

from cnref.mini.base import MiniSD
from cnref.paper.controlnet import ControlNet, ControlNetConfig
from cnref.mini.data import VAL_SEED, Scenes, scene_vocabulary, with_setting
from cnref.lab.results import load_controlnet, study_images
from cnref.lab.runner import run
from cnref.lab.studies import CALIBRATION, NETS, STUDIES, multicontrolnet_check, run_study, scenes_batches, settings
from cnref.mini.presets import preset
from cnref.mini.sample import generate
from cnref.mini.shipping import load_base


def test_scenes_base_knows_every_scene_word():
    base = MiniSD(preset("smoke", "scenes").base)
    prompts = Scenes(seed=VAL_SEED).batch(range(300))["prompt"]
    ids = base.tokenizer(prompts, padding="max_length", max_length=base.cfg.max_tokens).input_ids
    assert all(3 not in row and row[-1] == 0 for row in ids)          # no <unk>, never truncated
    assert len(base.tokenizer) == 4 + len(scene_vocabulary())
    with pytest.raises(ValueError, match="data"):
        preset("cpu", "imagenet")


def test_scene_batches_take_only_scene_prompt_settings():
    b = Scenes().batch(range(2))
    assert with_setting(b, "none")["prompt"] == ["", ""]
    with pytest.raises(ValueError, match="setting"):
        with_setting(b, "insufficient")


def test_cfg_with_control_in_both_branches_and_no_prompt_is_no_guidance():
    """Sec. 3.4 / Fig. 5b as an identity: with an empty prompt both CFG branches see the same control and
    text, so eps_prd = eps_c for every beta."""
    base = load_base("smoke", "scenes")
    net = ControlNet(base.unet, ControlNetConfig())
    torch.manual_seed(0)
    for p in net.parameters():
        p.data += 0.05 * torch.randn_like(p)
    cond = Scenes(size=base.cfg.size).batch(range(2))["cond"]
    x1 = generate(base, ["", ""], [(net, cond)], steps=3, beta=1.0, mode="both", seed=0)
    x9 = generate(base, ["", ""], [(net, cond)], steps=3, beta=9.0, mode="both", seed=0)
    assert torch.allclose(x1, x9, atol=1e-5)
    x9c = generate(base, ["", ""], [(net, cond)], steps=3, beta=9.0, mode="cond_only", seed=0)
    assert not torch.allclose(x1, x9c, atol=1e-3)          # control in eps_c only: guidance acts


def test_multicontrolnet_model_gives_the_same_residuals():
    base = load_base("smoke", "scenes")
    torch.manual_seed(0)
    nets = {n: ControlNet(base.unet, ControlNetConfig()) for n in NETS}
    for net in nets.values():             # away from zero init, so that every residual is non-trivial
        for p in net.parameters():
            p.data += 0.05 * torch.randn_like(p)
    with torch.no_grad():
        res = multicontrolnet_check(base, nets, scenes_batches(base, 4))
    assert res["max_abs_residual"] > 1e-2 and res["max_abs_diff"] < 1e-5


def test_settings_of_every_study():
    for study in STUDIES:
        ss = settings(study, 3.0)
        assert len({s.name for s in ss}) == len(ss) and ss
        for s in ss:
            assert len(s.nets) == len(s.scenes) == len(s.weights)
    assert len(settings("cfg", 3.0)) == 40 and {s.mode for s in settings("cfg", 3.0)} == \
        {"both", "cond_only", "cond_only_weighted", "cond_only_normalized"}
    # the quality study samples exactly the settings of the other studies that its claims compare
    for q in settings("quality", 3.0):
        study, name = q.name.split("/", 1)
        assert replace(q, name=name) in settings(study, 3.0), q
    with pytest.raises(ValueError, match="study"):
        settings("sweep", 3.0)


@pytest.mark.slow
def test_scene_controlnets_train_save_reload_and_feed_a_study(tmp_path):
    (r0, r1) = run("scenes", "smoke", [0], root=tmp_path)
    assert r0["config"]["data"] == "scenes" and {r0["variant"], r1["variant"]} == set(NETS)
    assert set(r0["final_eval"]) == {"held_out/none", "held_out/perfect", "train/perfect"}
    assert "edge_f1" in r0["final"]
    base = load_base("smoke", "scenes")
    net = load_controlnet(r0, base, tmp_path)
    assert set(net.state_dict()) == set(ControlNet(base.unet, ControlNetConfig()).state_dict())
    out = run_study("strength", "smoke", 0, tmp_path, log=lambda *_: None)
    assert set(out["results"]) == {s.name for s in settings("strength", 3.0)}
    assert out["controlnets"]["outline"].endswith("outline/seed0.json")
    imgs = study_images(out, tmp_path)
    assert imgs["s1"].dtype.name == "uint8" and imgs["s1"].shape[1:] == (3, base.cfg.size, base.cfg.size)
    # the study is resumable: a finished seed is read back, not recomputed
    again = run_study("strength", "smoke", 0, tmp_path, log=lambda *_: None)
    assert again["provenance"] == out["provenance"]
    with pytest.raises(ValueError, match="seed"):
        run_study("strength", "smoke", 5, tmp_path, log=lambda *_: None)
    q = run_study("quality", "smoke", 0, tmp_path, log=lambda *_: None)["results"]
    assert set(q) == {s.name for s in settings("quality", 3.0)} | set(CALIBRATION)
    assert all({"kid", "kid_std", "edge_f1"} <= set(row) for row in q.values())
    # the targets follow their own outlines, not the outlines they are paired with in the "moved" row
    assert q["calibration/ground_truth"]["edge_f1"] > q["calibration/moved"]["edge_f1"]
