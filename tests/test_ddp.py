"""Multi-process training: 2 CPU processes with DDP on gloo, on the tiny smoke config (issue 8)."""
import json
import os
import subprocess
import sys

import torch

from cnref.base import load_base
from cnref.controlnet import ControlNet, ControlNetConfig


def test_ddp_two_cpu_processes_keep_identical_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "cnref.train", "controlnet", "--preset", "smoke", "--steps", "3",
           "--devices", "2", "--run-dir", str(tmp_path)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"weights_rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # DDP averaged the gradients: both processes hold the same weights after 3 AdamW steps ...
    assert abs(ranks[0]["sum"] - ranks[1]["sum"]) <= 1e-9 * max(1.0, abs(ranks[0]["sum"]))
    assert ranks[0]["abs_sum"] == ranks[1]["abs_sum"]
    # ... and they trained: the weights moved away from the initialisation (zero convs no longer zero)
    init = ControlNet(load_base("smoke").unet, ControlNetConfig())
    init_abs = float(torch.cat([q.detach().flatten() for q in init.parameters()]).double().abs().sum())
    assert abs(ranks[0]["abs_sum"] - init_abs) > 1e-3
    assert set(ranks[0]["final"]) >= {"held_out/perfect", "train/perfect"}


def test_devices_must_divide_the_batch(tmp_path):
    import pytest
    from cnref.train import ControlNetTrainConfig, train_controlnet
    cfg = ControlNetTrainConfig.preset_default("smoke", batch_size=3)
    with pytest.raises(ValueError, match="devices"):
        train_controlnet(cfg, tmp_path, devices=2)
