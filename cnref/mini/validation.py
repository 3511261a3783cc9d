"""A ControlNet run's validation, shared by training (every validation of its curve) and by what samples its saved
weights later (`cnref.measure.gain`): its data, the validation batch, the fixed inputs of the condition-use measure
and the samples."""
from __future__ import annotations

import torch

from .base import MiniSD
from .data import VAL_SEED, dataset, prompts_for_setting
from .presets import ControlNetTrainConfig
from .sample import generate
from .use import use_inputs


def run_dataset(base: MiniSD, cfg: ControlNetTrainConfig, seed: int, n: int | None = None):
    """A run's procedural data (its set, condition type and condition size over the base's images) under `seed`:
    TRAIN_SEED for its training set, VAL_SEED for its held-out conditions."""
    return dataset(cfg.data, seed=seed, n=n, size=base.cfg.size, cond_factor=cfg.cond_factor, condition=cfg.condition)


@torch.no_grad()
def validation_inputs(base: MiniSD, cfg: ControlNetTrainConfig) -> tuple[dict, dict]:
    """A run's validation batch (the first val_n held-out conditions of its data, with their prompts) and the fixed
    inputs of its condition-use measure (`cnref.mini.use`) on that batch: a function of the config alone."""
    vb = run_dataset(base, cfg, VAL_SEED).batch(range(cfg.protocol.val_n))
    return vb, use_inputs(vb["image"], base.encode_prompt(vb["prompt"]), vb["cond"], vb.get("mask"), base.alpha_bar)


@torch.no_grad()
def validation_images(base: MiniSD, net, vb: dict, proto, seed: int) -> torch.Tensor:
    """A validation's samples of `net` on batch `vb` under sampler seed `seed` (DDIM, CFG, the validation prompt)."""
    dev = base.alpha_bar.device
    return generate(base, prompts_for_setting(vb, proto.val_prompt), [(net, vb["cond"].to(dev))],
                    steps=proto.val_steps, beta=proto.val_beta, seed=seed).float().cpu()
