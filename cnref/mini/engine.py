"""The Lightning plumbing both trainings share: deterministic step batches, the trainer's set-up, one progress bar
over steps, resumable checkpoints, when a run validates and when its plateau stops it, and quiet about the choices
made on purpose.

Every batch and every random draw is a pure function of (seed, global step), so an interrupted run resumes
from its last checkpoint and continues exactly as if it had never stopped.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from tqdm import tqdm

from ..checks import check_choice, check_positive
from .data import batch_at
from .presets import PRECISIONS, ControlNetTrainConfig


def controlnet_optimizer(params, lr: float) -> torch.optim.AdamW:
    """AdamW, fused: one kernel over all of the ControlNet's ~300 tensors instead of a Python loop (the
    default on CPU). +4% img/s on 2 CPU cores; the weights differ from the loop's by float rounding
    (< 1e-8 after 5 steps)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def warmup_cosine(warmup: int, total: int, min_ratio: float):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


class StepBatches(torch.utils.data.IterableDataset):
    """Training batches of steps start, start+1, ... stop-1, each the list of its `accumulate` micro-batches
    (data.batch_at: a pure function of the step). Worker w of W renders steps start+w, start+w+W, ...; the
    DataLoader takes the workers' batches round-robin, i.e. in step order."""

    def __init__(self, data, start: int, stop: int, batch_size: int, accumulate: int = 1, shuffle_seed: int = 0):
        self.data, self.start, self.stop = data, start, stop
        self.batch_size, self.accumulate, self.shuffle_seed = batch_size, accumulate, shuffle_seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        w, W = (info.id, info.num_workers) if info else (0, 1)
        for step in range(self.start + w, self.stop, W):
            yield {"step": step, "micro": [batch_at(self.data, step * self.accumulate + k, self.batch_size,
                                                    shuffle_seed=self.shuffle_seed) for k in range(self.accumulate)]}


def loader_workers() -> int:
    """Processes that render batches ahead. None on CPU: the 2 cores belong to the model (rendering in the
    main process is what the committed cpu timings measured). Up to 8 beside a GPU, which would otherwise
    wait ~0.25 s per batch of 64 conditions at 512x512 (cond_factor 8)."""
    return max(1, min(8, (os.cpu_count() or 2) - 2)) if torch.cuda.is_available() else 0


def step_loader(module: L.LightningModule, data, batch_size: int, accumulate: int = 1, shuffle_seed: int = 0):
    """The loader of the steps still to train: it starts at the (restored) global step, so a resumed run
    renders exactly the batches the uninterrupted run would have."""
    w = loader_workers()
    batches = StepBatches(data, module.trainer.global_step, module.trainer.max_steps + 1, batch_size,
                          accumulate, shuffle_seed)
    return torch.utils.data.DataLoader(batches, batch_size=None, num_workers=w, pin_memory=w > 0,
                                       prefetch_factor=4 if w else None)


def check_step(batch: dict, step: int) -> list[dict]:
    if batch["step"] != step:
        raise RuntimeError(f"the loader rendered step {batch['step']} for global step {step}")
    return batch["micro"]




def validates_at(cfg: ControlNetTrainConfig, step: int) -> bool:
    """Every val_every steps, and every val_early_every steps before val_early_until."""
    early = cfg.val_early_every and step < cfg.val_early_until and step % cfg.val_early_every == 0
    return step % cfg.val_every == 0 or bool(early)


def plateaued(history: list[dict], key: str, window: int, tol: float) -> bool:
    """The stopping rule of a run trained to its plateau, read at each validation from step 2 x window on: the
    mean of `key` over the validations of the last `window` steps, (s - window, s], is within `tol` of its mean
    over the `window` steps before (a mean over a window's validations, because one validation is noisy)."""
    s = history[-1]["step"]
    if s < 2 * window:
        return False
    last = [h[key] for h in history if s - window < h["step"] <= s]
    before = [h[key] for h in history if s - 2 * window < h["step"] <= s - window]
    return bool(before) and abs(np.mean(last) - np.mean(before)) < tol


def trainer_kwargs(run_dir: Path, steps: int, ckpt_every: int, extra_callbacks=(), devices: int = 1,
                   precision: str | None = None) -> dict:
    """devices > 1: one process per device, DDP (NCCL on GPUs, gloo on CPUs). precision None: bf16-mixed
    where a GPU supports it, else 32-true (the base's choice; a ControlNet run names its own)."""
    check_positive("devices", devices, integer=True)
    cuda = torch.cuda.is_available()
    if precision is None:
        precision = "bf16-mixed" if cuda and torch.cuda.is_bf16_supported() else "32-true"
    check_choice("precision", precision, PRECISIONS)
    keep_earlier_log(run_dir)
    return dict(
        max_steps=steps, accelerator="gpu" if cuda else "cpu", devices=devices,
        **({"strategy": "ddp"} if devices > 1 else {}),
        precision=precision,
        logger=CSVLogger(str(run_dir), name="", version=""), default_root_dir=str(run_dir),
        callbacks=[ModelCheckpoint(dirpath=str(run_dir / "ckpt"), every_n_train_steps=ckpt_every,
                                   save_last=True, save_top_k=1), StepProgress(), *extra_callbacks],
        enable_model_summary=False, enable_progress_bar=False, log_every_n_steps=10, num_sanity_val_steps=0)


class StepProgress(Callback):
    """One progress bar over optimiser steps (Lightning's counts epochs of an endless loader: "Epoch 0/-2"),
    showing the training loss and the last validation's fidelity."""

    def on_train_start(self, trainer, module):
        self.bar = tqdm(total=trainer.max_steps, initial=trainer.global_step, desc="train", unit="step",
                        disable=trainer.global_rank != 0, dynamic_ncols=True)

    def on_train_batch_end(self, trainer, module, *_):
        last = getattr(module, "history", None)
        post = {"loss": f"{float(trainer.callback_metrics.get('train/loss', float('nan'))):.4f}"}
        if last:
            post |= {k: f"{last[-1][k]:.3f}" for k in ("iou", "edge_f1") if k in last[-1]}
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(trainer.global_step - self.bar.n)

    def on_train_end(self, trainer, module):
        self.bar.close()


@contextlib.contextmanager
def quiet_lightning():
    """Lightning's notices about choices made here on purpose, silenced for the duration of a fit: the locked
    base sits in eval mode; checkpoints are taken after the manual optimiser step (what a resume needs);
    batches are rendered in the main process on a CPU (the cores belong to the model); its start-up notes
    (devices found, tips); a deprecation inside Lightning's own code; and, on a resume, that the log and
    checkpoint folders are not empty. Anything else still shows."""
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = log.level
    log.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        for message in (r".*module\(s\) in eval mode.*", r".*pre-optimization state.*",
                        r".*does not have many workers.*", r".*GPU available but not used.*",
                        r".*isinstance\(treespec, LeafSpec\).*",      # Lightning calling its own deprecated API
                        # a resumed run's folders: keep_earlier_log keeps the old curve, the checkpoints are resumed
                        r".*Experiment logs directory .* exists and is not empty.*",
                        r".*Checkpoint directory .* exists and is not empty.*"):
            warnings.filterwarnings("ignore", message=message)
        try:
            yield
        finally:
            log.setLevel(level)


def keep_earlier_log(run_dir: Path) -> None:
    """Lightning's CSVLogger deletes the metrics.csv of a directory it logs into, so a resumed run would
    lose the curve of its earlier launches (the gpu base lost its loss curve that way): keep each as
    metrics.<k>.csv."""
    old = run_dir / "metrics.csv"
    if old.exists():
        k = len(list(run_dir.glob("metrics.*.csv")))
        old.rename(run_dir / f"metrics.{k}.csv")


def last_checkpoint(run_dir: Path) -> str | None:
    last = run_dir / "ckpt" / "last.ckpt"
    return str(last) if last.exists() else None
