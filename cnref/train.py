"""Lightning training: pretraining of the mini SD base, and ControlNet training (Eq. 3).

Every batch and every random draw is a pure function of (seed, global step), so an interrupted run
resumes from its last checkpoint and continues exactly as if it had never stopped.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import lightning as L
import torch

from .base import BaseConfig, MiniSD, base_path
from .checks import check_positive
from .data import TRAIN_SEED, Fill50K, batch_at
from .ema import EMA
from .loss import add_noise, drop_prompts, eps_loss, sample_noise, sample_timesteps
from .provenance import provenance


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def warmup_cosine(warmup: int, total: int, min_ratio: float):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


class StepIndices(torch.utils.data.IterableDataset):
    """Yields step numbers only: the batch itself is rendered from the global step (resumable)."""

    def __init__(self, n: int):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))


def trainer_kwargs(run_dir: Path, steps: int, ckpt_every: int, extra_callbacks=()) -> dict:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    cuda = torch.cuda.is_available()
    return dict(
        max_steps=steps, accelerator="gpu" if cuda else "cpu", devices=1,
        precision="bf16-mixed" if cuda and torch.cuda.is_bf16_supported() else "32-true",
        logger=CSVLogger(str(run_dir), name="", version=""), default_root_dir=str(run_dir),
        callbacks=[ModelCheckpoint(dirpath=str(run_dir / "ckpt"), every_n_train_steps=ckpt_every,
                                   save_last=True, save_top_k=1), *extra_callbacks],
        enable_model_summary=False, log_every_n_steps=10, num_sanity_val_steps=0)


def last_checkpoint(run_dir: Path) -> str | None:
    last = run_dir / "ckpt" / "last.ckpt"
    return str(last) if last.exists() else None


# --------------------------------------------------------------------------------------- base model
@dataclass(frozen=True)
class BaseTrainConfig:
    preset: str = "cpu"
    steps: int = 2000
    batch_size: int = 64
    lr: float = 5e-4
    warmup: int = 100
    min_lr_ratio: float = 0.1
    prompt_dropout: float = 0.1      # empty prompts, so that the base supports classifier-free guidance
    ema_decay: float = 0.999
    seed: int = 0
    ckpt_every: int = 100


class BasePretraining(L.LightningModule):
    """Trains the mini SD (UNet + text encoder jointly) with Eq. 3 on procedural Fill50K."""

    def __init__(self, cfg: BaseTrainConfig):
        super().__init__()
        self.cfg = cfg
        self.base_cfg = BaseConfig.preset(cfg.preset)
        self.model = MiniSD(self.base_cfg)
        self.ema = EMA(self.model, cfg.ema_decay)
        self.data = Fill50K(size=self.base_cfg.size, cond_factor=self.base_cfg.cond_factor, seed=TRAIN_SEED)

    def training_step(self, _, __):
        step, cfg = self.global_step, self.cfg
        g = step_generator(cfg.seed, step)
        b = batch_at(self.data, step, cfg.batch_size)
        z_0 = b["image"].to(self.device)
        c_t = self.model.encode_prompt(drop_prompts(b["prompt"], cfg.prompt_dropout, g))
        eps = sample_noise(z_0, self.base_cfg.offset_noise, g)
        t = sample_timesteps(z_0.shape[0], self.base_cfg.num_train_timesteps, generator=g, device=self.device)
        z_t = add_noise(z_0, eps, t, self.model.alpha_bar)
        loss = eps_loss(eps, self.model.unet(z_t, t, c_t).sample)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_train_batch_end(self, *_):
        self.ema.update(self.model, self.global_step)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, warmup_cosine(self.cfg.warmup, self.cfg.steps, self.cfg.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def train_dataloader(self):
        return torch.utils.data.DataLoader(StepIndices(self.cfg.steps + 1), batch_size=None)


def pretrain_base(cfg: BaseTrainConfig, run_dir: Path, weights: Path) -> Path:
    """Train (or resume) the base, then write its EMA weights to `weights` with provenance."""
    check_positive("steps", cfg.steps, integer=True)
    L.seed_everything(cfg.seed, workers=False, verbose=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    module = BasePretraining(cfg)
    trainer = L.Trainer(**trainer_kwargs(run_dir, cfg.steps, cfg.ckpt_every))
    trainer.fit(module, ckpt_path=last_checkpoint(run_dir))
    prov = provenance(config=asdict(cfg), steps_done=trainer.global_step)
    module.ema.shadow.save(weights, meta={"provenance": json.dumps(prov)})
    (run_dir / "provenance.json").write_text(json.dumps(prov, indent=2))
    return weights


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m cnref.train", description=__doc__)
    sub = ap.add_subparsers(dest="what", required=True)
    b = sub.add_parser("base", help="pretrain the mini SD base (resumes from run-dir)")
    b.add_argument("--preset", default="cpu", choices=["smoke", "cpu", "gpu"])
    b.add_argument("--steps", type=int)
    b.add_argument("--batch-size", type=int)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--run-dir", type=Path)
    b.add_argument("--weights", type=Path, help="where to write the EMA weights (default: the package's)")
    a = ap.parse_args(argv)
    if a.what == "base":
        cfg = BaseTrainConfig(preset=a.preset, seed=a.seed)
        if a.steps:
            cfg = replace(cfg, steps=a.steps)
        if a.batch_size:
            cfg = replace(cfg, batch_size=a.batch_size)
        run_dir = a.run_dir or Path("runs") / f"base_{a.preset}"
        out = pretrain_base(cfg, run_dir, a.weights or base_path(a.preset))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
