"""Presets and overrides: one home per setting, `--set key=value` for any field, and result files that keep
their layout (every committed run's config is what its ablation declares today)."""
import json
from dataclasses import replace

import pytest

from cnref.paper.controlnet import ControlNetConfig
from cnref.measure.evaluate import settings_batches
from cnref.lab.ablations import ABLATIONS
from cnref.lab.results import results_root
from cnref.lab.runner import same_config
from cnref.mini.presets import ControlNetTrainConfig, EvalProtocol, config_dict, config_from_dict, override, preset
from cnref.mini.train import ControlNetTraining


def test_override_reaches_nested_fields_and_checks_types():
    cfg = preset("cpu").train
    out = override(cfg, ["lr=3e-4", "steps=1000", "control.factor=4", "protocol.val_n=64", "n_train=None"])
    assert (out.lr, out.steps, out.control.factor, out.protocol.val_n, out.n_train) == (3e-4, 1000, 4, 64, None)
    assert override(cfg, ["lr=1"]).lr == 1.0 and isinstance(override(cfg, ["lr=1"]).lr, float)
    assert override(cfg, ["timesteps=high_t"]).timesteps == "high_t"      # a bare word is a string
    for bad, msg in [(["stepz=3"], r"`--set`: expected a field of ControlNetTrainConfig .*received 'stepz'"),
                     (["steps=fast"], r"`--set steps`: expected a int, received 'fast'"),
                     (["steps"], r"`--set`: expected key=value, received 'steps'"),
                     (["control=3"], r"expected a field inside control"),
                     (["lr.x=3"], r"expected lr to be a nested config"),
                     (["unlock_decoder=1"], r"`--set unlock_decoder`: expected a bool, received 1")]:
        with pytest.raises(ValueError, match=msg):
            override(cfg, bad)


def test_result_files_keep_the_flat_layout_and_round_trip():
    cfg = override(preset("gpu").train, ["control.lite=True", "protocol.final_n=8"])
    d = config_dict(cfg)
    assert "protocol" not in d and d["final_n"] == 8 and d["val_n"] == 64 and d["control"]["lite"] is True
    assert list(d).index("val_every") < list(d).index("val_n") < list(d).index("ckpt_every")
    assert config_from_dict(json.loads(json.dumps(d))) == cfg
    assert config_from_dict({**d, "cond_factor": 8}) == cfg          # a legacy key is dropped


def test_old_results_without_new_config_keys_stay_the_same_config():
    cfg = config_dict(ControlNetTrainConfig())
    old = {k: v for k, v in cfg.items() if k not in ("data", "condition")}
    assert same_config(old, cfg)
    assert same_config({**old, "cond_factor": None}, cfg)
    assert not same_config({**old, "lr": 1.0}, cfg)
    assert not same_config(old, config_dict(ControlNetTrainConfig(data="scenes")))


def test_every_committed_run_is_what_its_ablation_declares():
    """The declarations reproduce the configs the committed runs were made with (so the same command finds
    them finished), apart from runs made with an explicit override that their command records."""
    root = results_root()
    checked = 0
    for p in sorted(root.glob("*/cpu/*/seed*.json")):
        if p.parts[-4] == "studies":
            continue
        r = json.loads(p.read_text())
        v = next(v for v in ABLATIONS[r["ablation"]].variants("cpu") if v.name == r["variant"])
        if "--steps" in r["provenance"]["command"]:
            continue
        assert same_config(r["config"], config_dict(replace(v.cfg, seed=r["seed"]))), p
        checked += 1
    assert checked > 100


def test_the_condition_factor_has_one_home():
    """Training, validation and final-evaluation conditions are rendered at size * control.factor."""
    cfg = override(preset("smoke").train, ["control.factor=8"])
    assert cfg.cond_factor == 8 and preset("gpu").train.cond_factor == 8 and preset("cpu").train.cond_factor == 1
    m = ControlNetTraining(cfg)
    s = m.base.cfg.size
    assert m.val_batch["cond"].shape[-1] == m.data.batch([0])["cond"].shape[-1] == 8 * s
    assert {b["cond"].shape[-1] for _, b in settings_batches(m.base, 2, cond_factor=cfg.cond_factor)} == {8 * s}


def test_presets_are_frozen_and_scenes_change_only_the_data():
    with pytest.raises(AttributeError):
        preset("cpu").train.lr = 1.0
    sc = preset("cpu", "scenes")
    assert sc.train == replace(preset("cpu").train, data="scenes")
    assert sc.base.max_tokens == 24 and sc.base_train.steps == preset("cpu").base_train.steps * 3 // 2
    assert preset("smoke").train.protocol == EvalProtocol(val_n=4, val_steps=2, val_keep=4, final_n=4)
    assert isinstance(preset("cpu").train.control, ControlNetConfig)
    with pytest.raises(ValueError, match=r"`preset`: expected one of \['cpu', 'gpu', 'smoke'\], received 'tpu'"):
        preset("tpu")
