"""The training engine on the smoke preset: it learns, resumes exactly, renders batches in step order; DDP."""
import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from cnref.paper.controlnet import ControlNet, ControlNetConfig
from cnref.mini.data import Fill50K, batch_at
from cnref.mini.presets import override, preset
from cnref.mini.shipping import load_base, load_base_file
from cnref.mini.engine import StepBatches
from cnref.mini.train import pretrain_base, train_controlnet



def _cfg(**over):
    return replace(preset("smoke").train, **over)


def untimed(row: dict) -> dict:
    """A validation row without its clock readings (a resumed run's differ)."""
    return {k: v for k, v in row.items() if k not in ("elapsed_s", "train_s")}


@pytest.mark.slow        # trains twice, with a resume
def test_resume_is_exact(tmp_path):
    straight = train_controlnet(_cfg(steps=4), tmp_path / "a")
    train_controlnet(_cfg(steps=2), tmp_path / "b")
    (tmp_path / "b" / "metrics.csv").write_text("step,train/loss\n1,0.5\n")   # the first launch's curve
    resumed = train_controlnet(_cfg(steps=4), tmp_path / "b")         # continues from step 2
    assert [h["step"] for h in resumed.history] == [0, 2, 4]
    assert (tmp_path / "b" / "metrics.0.csv").read_text() == "step,train/loss\n1,0.5\n"   # kept, not deleted
    for a, b in zip(straight.history, resumed.history):
        assert untimed(a) == untimed(b)
    for p, q in zip(straight.controlnet.parameters(), resumed.controlnet.parameters()):
        assert torch.equal(p, q)
    assert any(torch.count_nonzero(z.weight) > 0 for z in straight.controlnet.zero_convs())   # it trained


@pytest.mark.slow        # about 20 s: a run killed in a subprocess, then rerun
def test_a_run_killed_and_rerun_reproduces_the_uninterrupted_one_quietly(tmp_path):
    """kill -9 after the first checkpoint, the same command again: every validation as in an uninterrupted run (the
    loss since the last validation, its standard error and condition use included), and no notice on resuming."""
    sets = ["steps=50", "val_every=10", "ckpt_every=25"]     # the last checkpoint holds the whole history
    cmd = [sys.executable, "-m", "cnref", "train", "controlnet", "--preset", "smoke", "--run-dir", str(tmp_path / "k"),
           "--set", *sets]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "k" / "ckpt" / "last.ckpt"
    for _ in range(1200):
        if ckpt.exists() or first.poll() is not None:
            break
        time.sleep(0.05)
    first.kill()                                          # SIGKILL: nothing is saved on the way out
    first.wait()
    assert ckpt.exists() and torch.load(ckpt, weights_only=False)["global_step"] < 50
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    assert "exists and is not empty" not in again.stderr and "Warning" not in again.stderr, again.stderr[-2000:]
    resumed = torch.load(ckpt, weights_only=False)["cnref"]["history"]
    straight = train_controlnet(override(preset("smoke").train, sets), tmp_path / "s").history
    assert [untimed(h) for h in resumed] == [untimed(h) for h in straight]
    assert all(h["loss"] is not None for h in resumed[1:])


def test_render_ahead_workers_keep_step_order():
    """Beside a GPU, worker processes render batches ahead: the loader must still hand over exactly
    data.batch_at's batches, in step order, from any start step (a resumed run)."""
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


def test_a_run_stops_at_its_plateau_with_the_model_it_last_validated(tmp_path):
    """plateau_tol: the rule read at each validation; met at step 2 (window 1), training stops before that step's
    update: two updates made (Adam's own count), so the weights are the ones the last validation measured."""
    stopped = train_controlnet(_cfg(steps=6, val_every=1, plateau_window=1, plateau_tol=1.0), tmp_path / "a")
    assert [h["step"] for h in stopped.history] == [0, 1, 2]
    adam = stopped.trainer.optimizers[0]
    assert {int(adam.state[p]["step"]) for p in stopped.controlnet.trainable()} == {2}


def test_pretrain_base_writes_float32_and_the_shipped_form(tmp_path):
    cfg = replace(preset("smoke").base_train, steps=2, batch_size=4)
    out = pretrain_base(cfg, tmp_path / "run", tmp_path / "base.safetensors")
    shipped, full = load_base_file(out), load_base_file(tmp_path / "run" / "ema_float32.safetensors")
    assert json.loads((tmp_path / "run" / "provenance.json").read_text())["steps_done"] == 2
    for v, w in zip(full.state_dict().values(), shipped.state_dict().values()):
        assert torch.equal(v, w)                                  # the smoke base fits: stored as float32


DDP_SCRIPT = """
import json, sys
from dataclasses import replace
from pathlib import Path
import torch
from cnref.mini.presets import override, preset
from cnref.mini.train import train_controlnet
run_dir = Path(sys.argv[1])
m = train_controlnet(replace(preset("smoke").train, steps=3), run_dir, devices=2)
flat = torch.cat([p.detach().flatten() for p in m.controlnet.parameters()])
(run_dir / f"weights_rank{m.global_rank}.json").write_text(json.dumps(
    {"world_size": m.trainer.world_size, "sum": float(flat.double().sum()), "abs_sum": float(flat.double().abs().sum())}))
"""


@pytest.mark.slow        # about 15 s: two DDP processes
def test_ddp_two_cpu_processes_keep_identical_weights(tmp_path):
    """2 CPU processes with DDP on gloo: each reports its own weights, which must be identical."""
    (tmp_path / "ddp.py").write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(tmp_path / "ddp.py"), str(tmp_path / "run")], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    ranks = [json.loads((tmp_path / "run" / f"weights_rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # DDP averaged the gradients: both processes hold the same weights after 3 AdamW steps ...
    assert abs(ranks[0]["sum"] - ranks[1]["sum"]) <= 1e-9 * max(1.0, abs(ranks[0]["sum"]))
    assert ranks[0]["abs_sum"] == ranks[1]["abs_sum"]
    # ... and they trained: the weights moved away from the initialisation (zero convs no longer zero)
    init = ControlNet(load_base("smoke").unet, ControlNetConfig())
    init_abs = float(torch.cat([q.detach().flatten() for q in init.parameters()]).double().abs().sum())
    assert abs(ranks[0]["abs_sum"] - init_abs) > 1e-3


def test_devices_must_divide_the_batch(tmp_path):
    cfg = replace(preset("smoke").train, batch_size=3)
    with pytest.raises(ValueError, match="devices"):
        train_controlnet(cfg, tmp_path, devices=2)


@pytest.mark.slow        # trains twice
def test_a_fill50k_folder_trains_like_the_same_samples_in_memory(tmp_path):
    """train_folder: the official folder layout (source/, target/, prompt.json) feeds the same loop. Written from
    the procedural training set, it must train as that set does with n_train (PNG's 8-bit rounding aside)."""
    from cnref.mini.data import TRAIN_SEED
    from cnref.mini.data.io import write_fill50k_folder
    cfg = _cfg(steps=3)
    data = Fill50K(size=load_base("smoke").cfg.size, cond_factor=cfg.cond_factor, seed=TRAIN_SEED)
    folder = write_fill50k_folder(data, 16, tmp_path / "fill50k")
    from_folder = train_controlnet(replace(cfg, train_folder=str(folder)), tmp_path / "folder")
    in_memory = train_controlnet(replace(cfg, n_train=16), tmp_path / "memory")
    losses = [(a["loss"], b["loss"]) for a, b in zip(from_folder.history, in_memory.history) if b.get("loss") is not None]
    assert losses and all(abs(a - b) < 2e-3 * max(1.0, abs(b)) for a, b in losses), losses
    with pytest.raises(ValueError, match="train_folder"):
        train_controlnet(replace(cfg, train_folder=str(tmp_path / "nowhere")), tmp_path / "x")
