"""The training engine and runner on the smoke preset: learns, resumes exactly, never overwrites silently."""
import json
from dataclasses import replace

import pytest
import torch

from cnref.base import SHIPPED_MAX_BYTES, BaseConfig, MiniSD, base_path, compact_state, expand_state, load_base
from cnref.experiments import convergence_step, run
from cnref.train import ControlNetTrainConfig, train_controlnet


def test_shipped_bases_load_offline():
    for preset in ("smoke", "cpu", "gpu"):
        base = load_base(preset)
        assert base.cfg == BaseConfig.preset(preset)
        assert all(not p.requires_grad for p in base.parameters())
        assert base_path(preset).stat().st_size <= SHIPPED_MAX_BYTES    # DESIGN.md's limit (gpu: compacted)


def test_compact_state_fits_and_bounds_the_rounding(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {"big.weight": torch.randn(64, 32, 3, 3, generator=g), "odd.weight": torch.randn(7, 5, generator=g),
             "small.weight": torch.randn(16, 4, generator=g), "norm.bias": torch.randn(64, generator=g)}
    float16_bytes = 2 * sum(v.numel() for v in state.values())
    small, note = compact_state(state, max_bytes=float16_bytes)          # float16 alone overflows the headroom
    assert small["big.weight"].dtype == torch.int8 and small["small.weight"].dtype == torch.float16
    assert "int8" in note and "1 largest" in note
    assert sum(v.numel() * v.element_size() for v in small.values()) <= float16_bytes
    back = expand_state(small)
    assert set(back) == set(state) and all(v.dtype == torch.float32 for v in back.values())
    # per group of 32: |w - q s| <= s / 2 = max|w_group| / 254 (plus the scale's float16 rounding)
    w = state["big.weight"].reshape(-1, 32)
    err = (back["big.weight"].reshape(-1, 32) - w).abs().amax(dim=1)
    assert torch.all(err <= w.abs().amax(dim=1) / 254 * 1.01)
    assert torch.allclose(back["small.weight"], state["small.weight"], atol=2e-3)   # float16 only
    with pytest.raises(ValueError, match="max_bytes"):
        compact_state(state, max_bytes=1000)


def test_save_with_a_size_limit_round_trips(tmp_path):
    base = load_base("smoke")
    full = sum(p.numel() for p in base.state_dict().values()) * 4
    base.save(tmp_path / "b.safetensors", max_bytes=full // 2)    # float16 alone does not fit
    assert (tmp_path / "b.safetensors").stat().st_size <= full // 2
    again = MiniSD.load(tmp_path / "b.safetensors")
    for (k, v), w in zip(base.state_dict().items(), again.state_dict().values()):
        assert torch.allclose(v, w, atol=0.02 * v.abs().max().item() + 1e-3), k


def test_missing_weights_say_how_to_rebuild(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m cnref.train base"):
        MiniSD.load(tmp_path / "nope.safetensors")


def _cfg(**over):
    return ControlNetTrainConfig.preset_default("smoke", **over)


def test_resume_is_exact(tmp_path):
    straight = train_controlnet(_cfg(steps=4), tmp_path / "a")
    train_controlnet(_cfg(steps=2), tmp_path / "b")
    (tmp_path / "b" / "metrics.csv").write_text("step,train/loss\n1,0.5\n")   # the first launch's curve
    resumed = train_controlnet(_cfg(steps=4), tmp_path / "b")         # continues from step 2
    assert [h["step"] for h in resumed.history] == [0, 2, 4]
    assert (tmp_path / "b" / "metrics.0.csv").read_text() == "step,train/loss\n1,0.5\n"   # kept, not deleted
    for a, b in zip(straight.history, resumed.history):
        assert {k: v for k, v in a.items() if k != "elapsed_s"} == {k: v for k, v in b.items() if k != "elapsed_s"}
    for p, q in zip(straight.controlnet.parameters(), resumed.controlnet.parameters()):
        assert torch.equal(p, q)
    assert any(torch.count_nonzero(z.weight) > 0 for z in straight.controlnet.zero_convs())   # it trained


def test_render_ahead_workers_keep_step_order():
    """Beside a GPU, worker processes render batches ahead: the loader must still hand over exactly
    data.batch_at's batches, in step order, from any start step (a resumed run)."""
    from cnref.data import Fill50K, batch_at
    from cnref.train import StepBatches
    data = Fill50K(size=8, n=10)
    batches = StepBatches(data, start=3, stop=10, batch_size=4, accumulate=2, shuffle_seed=1)
    got = list(torch.utils.data.DataLoader(batches, batch_size=None, num_workers=3))
    assert [b["step"] for b in got] == list(range(3, 10))
    for b in got:
        for k, m in enumerate(b["micro"]):
            ref = batch_at(data, b["step"] * 2 + k, 4, shuffle_seed=1)
            assert torch.equal(m["image"], ref["image"]) and torch.equal(m["cond"], ref["cond"])
            assert m["prompt"] == ref["prompt"]


def test_accumulation_and_options_run(tmp_path):
    m = train_controlnet(_cfg(steps=2, accumulate=2, timesteps="high_t", n_train=8, unlock_decoder=True),
                         tmp_path / "c")
    assert m.history[-1]["step"] == 2
    assert any(p.requires_grad for p in m.base.unet.up_blocks.parameters())


def test_runner_skips_and_refuses_to_overwrite(tmp_path):
    out = run("sudden_convergence", "smoke", [0], root=tmp_path)[0]
    path = tmp_path / "sudden_convergence" / "smoke" / "controlnet" / "seed0.json"
    saved = json.loads(path.read_text())
    assert saved["complete"] and saved["config"]["seed"] == 0 and saved["provenance"]["commit"]
    assert saved["history"] == out["history"] and (path.with_suffix(".npz")).exists()
    logs = []
    from cnref.experiments import ABLATIONS, run_one
    v = ABLATIONS["sudden_convergence"]("smoke")[0]
    run_one("sudden_convergence", v, 0, tmp_path, log=logs.append)
    assert logs[0].startswith("skip")
    with pytest.raises(ValueError, match="--force"):
        run("sudden_convergence", "smoke", [0], root=tmp_path, steps=6)


def test_convergence_rule():
    h = [{"step": s, "iou": v} for s, v in zip(range(0, 100, 10), [.2, .21, .2, .22, .5, .6, .65, .66, .65, .66])]
    assert convergence_step(h) == 40         # midpoint of 0.2 and 0.657 is 0.43
    flat = [{"step": s, "iou": 0.2 + 0.001 * s} for s in range(0, 100, 10)]
    assert convergence_step(flat) is None


def test_jobs_split_the_seeds_over_processes(tmp_path):
    """--jobs 2: two processes at once, one seed each; each result says it shared the machine."""
    from cnref.experiments import main
    with pytest.raises(SystemExit) as e:
        main(["run", "sudden_convergence", "--smoke", "--root", str(tmp_path), "--seeds", "0", "1", "--jobs", "2"])
    assert e.value.code == 0
    for s in (0, 1):
        r = json.loads((tmp_path / "sudden_convergence" / "smoke" / "controlnet" / f"seed{s}.json").read_text())
        assert r["complete"] and r["seed"] == s and r["concurrent_processes"] == 2
    with pytest.raises(ValueError, match="jobs"):
        main(["run", "sudden_convergence", "--smoke", "--root", str(tmp_path), "--jobs", "0"])


def test_pretrain_base_writes_float32_and_the_shipped_form(tmp_path):
    from cnref.train import BaseTrainConfig, pretrain_base
    cfg = BaseTrainConfig.preset_default("smoke", steps=2, batch_size=4)
    out = pretrain_base(cfg, tmp_path / "run", tmp_path / "base.safetensors")
    shipped, full = MiniSD.load(out), MiniSD.load(tmp_path / "run" / "ema_float32.safetensors")
    assert json.loads((tmp_path / "run" / "provenance.json").read_text())["steps_done"] == 2
    for v, w in zip(full.state_dict().values(), shipped.state_dict().values()):
        assert torch.equal(v, w)                                  # the smoke base fits: stored as float32


def test_cond_factor_overrides_the_bases_condition_resolution():
    """A ControlNet may train at another condition resolution than its base preset's: its training,
    validation and final-evaluation conditions are all rendered at size * cond_factor."""
    from cnref.controlnet import ControlNetConfig
    from cnref.evaluate import settings_batches
    from cnref.train import ControlNetTrainConfig, ControlNetTraining
    cfg = ControlNetTrainConfig.preset_default("smoke", cond_factor=8, controlnet=ControlNetConfig(factor=8))
    m = ControlNetTraining(cfg)
    s = m.base.cfg.size
    assert m.base.cfg.cond_factor != 8
    assert m.val_batch["cond"].shape[-1] == m.data.batch([0])["cond"].shape[-1] == 8 * s
    assert {b["cond"].shape[-1] for _, b in settings_batches(m.base, 2, cond_factor=m.cond_factor)} == {8 * s}
