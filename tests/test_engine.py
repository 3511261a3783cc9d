"""The training engine and runner on the smoke preset: learns, resumes exactly, never overwrites silently."""
import json
from dataclasses import replace

import pytest
import torch

from cnref.base import BaseConfig, MiniSD, base_path, load_base
from cnref.experiments import convergence_step, run
from cnref.train import ControlNetTrainConfig, train_controlnet


def test_shipped_bases_load_offline():
    for preset in ("smoke", "cpu", "gpu"):
        base = load_base(preset)
        assert base.cfg == BaseConfig.preset(preset)
        assert all(not p.requires_grad for p in base.parameters())
        assert base_path(preset).stat().st_size <= 24 * 2 ** 20        # gpu: float16 on disk


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
