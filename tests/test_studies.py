"""Issue 9: scenes as a training set, scene metrics, and the inference-time studies (on the smoke bases)."""
import json

import pytest
import torch

from cnref.base import BaseConfig, MiniSD, load_base
from cnref.controlnet import ControlNet, ControlNetConfig
from cnref.data import VAL_SEED, with_setting
from cnref.experiments import config_dict, load_controlnet, run, same_config
from cnref.metrics import edge_f1, label_edges, scene_fidelity
from cnref.sample import generate
from cnref.scenes import Scenes, scene_vocabulary
from cnref.studies import (NETS, STUDIES, multicontrolnet_check, run_study, scenes_batches, settings,
                           study_images)
from cnref.train import ControlNetTrainConfig


def test_scenes_base_knows_every_scene_word():
    base = MiniSD(BaseConfig.preset("smoke", "scenes"))
    prompts = Scenes(seed=VAL_SEED).batch(range(300))["prompt"]
    ids = base.tokenizer(prompts, padding="max_length", max_length=base.cfg.max_tokens).input_ids
    assert all(3 not in row and row[-1] == 0 for row in ids)          # no <unk>, never truncated
    assert len(base.tokenizer) == 4 + len(scene_vocabulary())
    with pytest.raises(ValueError, match="data"):
        BaseConfig.preset("cpu", "imagenet")


def test_label_edges_exact():
    vis = torch.zeros(1, 2, 6, 6, dtype=torch.bool)
    vis[0, 0, 1:3, 1:3] = True          # a 2x2 shape; another shape's 1x1 pixel at (4, 4)
    vis[0, 1, 4, 4] = True
    e = label_edges(vis)[0, 0]
    want = torch.zeros(6, 6, dtype=torch.bool)
    want[0:4, 1:3] = True; want[1:3, 0:4] = True             # the square and its 4-neighbours outside
    want[3:6, 4] = True; want[4, 3:6] = True
    assert torch.equal(e, want)


def test_scene_fidelity_calibration():
    b = Scenes(seed=VAL_SEED).batch(range(64))
    gt = scene_fidelity(b["image"], b)
    assert gt["edge_f1"].mean() > 0.99 and gt["color_ok"].mean() > 0.99 and gt["bg_ok"].mean() == 1
    other = scene_fidelity(Scenes(seed=VAL_SEED).batch(range(64, 128))["image"], b)
    assert other["edge_f1"].mean() < 0.5 and other["color_ok"].mean() < 0.2
    shifted = edge_f1(torch.roll(b["image"], 2, -1), b["visible"])
    assert gt["edge_f1"].mean() > shifted.mean() > other["edge_f1"].mean()    # it degrades gradually
    assert edge_f1(torch.zeros_like(b["image"]), b["visible"]).eq(0).all()   # no edges detected: F1 0


def test_scene_batches_take_only_scene_prompt_settings():
    b = Scenes().batch(range(2))
    assert with_setting(b, "none")["prompt"] == ["", ""]
    with pytest.raises(ValueError, match="setting"):
        with_setting(b, "insufficient")


def test_old_results_without_new_config_keys_stay_the_same_config():
    cfg = config_dict(ControlNetTrainConfig())
    old = {k: v for k, v in cfg.items() if k not in ("data", "condition")}
    assert same_config(old, cfg)
    assert not same_config({**old, "lr": 1.0}, cfg)
    assert not same_config(old, config_dict(ControlNetTrainConfig(data="scenes")))


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
    assert len(settings("cfg", 3.0)) == 30 and {s.mode for s in settings("cfg", 3.0)} == \
        {"both", "cond_only", "cond_only_weighted"}
    with pytest.raises(ValueError, match="study"):
        settings("sweep", 3.0)


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
