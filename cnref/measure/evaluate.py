"""Evaluation under the paper's four prompt settings, and the bounds every ablation table prints.

- `evaluate_settings`: the final evaluation of a trained ControlNet (or of the base alone): condition
  fidelity, prompt fidelity and FID per prompt setting on held-out conditions, and on training ones.
- `final_evaluation`: that, for a trained run, with the run's protocol and seeds.
- `bounds` (`python -m cnref evaluate bounds --preset cpu`): the calibration rows, from the same held-out set
  and sampler as every run's final evaluation: ground-truth targets (upper bound) and the locked base without
  control (lower bound; its disc is anywhere, so its IoU is what a ControlNet must beat).
- `validation_bounds` (`python -m cnref evaluate validation --preset cpu`): the calibration of the validation
  curves, on exactly their conditions, prompt and sampler: the ground truth and the base alone under each sampler
  seed a run validates with (its training seed), from which each run's convergence level is read.
- `base_quality` (`python -m cnref evaluate base --preset cpu`): how often the base's samples show the
  prompt's colours.
"""
from __future__ import annotations

import torch

from ..mini.data import (PROMPT_SETTINGS, SCENE_SETTINGS, VAL_SEED, Fill50K, batch_at, dataset, prompts_for_setting,
                         to_uint8, with_setting)
from ..mini.metrics import fidelity, fidelity_fn, summarize
from .quality import FID, KID
from ..mini.presets import ControlNetTrainConfig, EvalProtocol
from ..mini.sample import generate


def settings_batches(base, n: int, train_batch: dict | None = None, condition: str = "outline",
                     cond_factor: int = 1) -> list[tuple[str, dict]]:
    """(name, batch) for each evaluation set: held-out conditions under each prompt setting of the base's
    dataset (Fill50K: the paper's four; scenes: perfect and none), and training conditions with the perfect
    prompt when train_batch is given. Conditions are rendered at size * cond_factor."""
    held = dataset(base.cfg.data, size=base.cfg.size, cond_factor=cond_factor, seed=VAL_SEED,
                   condition=condition).batch(range(n))
    settings = PROMPT_SETTINGS if base.cfg.data == "fill50k" else SCENE_SETTINGS
    sets = [(f"held_out/{s}", with_setting(held, s)) for s in sorted(settings)]
    return sets + ([("train/perfect", with_setting(train_batch, "perfect"))] if train_batch is not None else [])


@torch.no_grad()
def evaluate_settings(base, controlnet, n: int, *, steps: int, beta: float, seed: int,
                      train_batch: dict | None = None, fid: FID | None = None, condition: str = "outline",
                      cond_factor: int = 1) -> tuple[dict, dict]:
    """Metrics (fidelity means + FID) and the uint8 images of each evaluation set. controlnet=None samples
    the base alone; with no prompt and no control the colours are free, and the metrics say so."""
    fid = fid or FID(base)
    measure = fidelity_fn(base.cfg.data)[0]
    out, images_u8 = {}, {}
    dev = base.alpha_bar.device
    for name, b in settings_batches(base, n, train_batch, condition, cond_factor):
        nets = [(controlnet, b["cond"].to(dev))] if controlnet is not None else []
        images = generate(base, b["prompt"], nets, steps=steps, beta=beta, seed=seed).float().cpu()
        out[name] = {**summarize(measure(images, b)), "fid": fid(images)}
        images_u8[name] = to_uint8(images)
    return out, images_u8


@torch.no_grad()
def final_evaluation(base, controlnet, cfg: ControlNetTrainConfig, train_data) -> tuple[dict, dict]:
    """A trained run's final evaluation: `evaluate_settings` on cfg.protocol.final_n held-out conditions under
    every prompt setting and on conditions the model trained on (the first batch of its data order), sampled
    with seed cfg.seed + 1. Colour fidelity is against the prompt's colours (conflicting: the prompt's)."""
    p = cfg.protocol
    controlnet.eval()
    train = batch_at(train_data, 0, p.final_n, shuffle_seed=cfg.seed)
    out, images = evaluate_settings(base, controlnet, p.final_n, steps=p.val_steps, beta=p.val_beta,
                                    seed=cfg.seed + 1, train_batch=train, condition=cfg.condition,
                                    cond_factor=cfg.cond_factor)
    if p.kid_n:
        out[QUALITY_SET] = quality_row(base, controlnet, p.kid_n, steps=p.val_steps, beta=p.val_beta,
                                       seed=cfg.seed + 1, condition=cfg.condition, cond_factor=cfg.cond_factor)
    return out, images


QUALITY_SET = "quality/held_out/perfect"     # a final evaluation's KID row (EvalProtocol.kid_n > 0)


@torch.no_grad()
def quality_row(base, controlnet, n: int, *, steps: int, beta: float, seed: int, condition: str = "outline",
                cond_factor: int = 1) -> dict:
    """Image quality that sees placement (cnref.measure.quality.KID on (image, condition) pairs) of `n` samples on the
    first n held-out conditions with the perfect prompt, with their fidelity; KID needs more samples than the
    other rows (256 in the quality study), so it is its own set."""
    b = with_setting(dataset(base.cfg.data, size=base.cfg.size, cond_factor=cond_factor, seed=VAL_SEED,
                             condition=condition).batch(range(n)), "perfect")
    images = generate(base, b["prompt"], [(controlnet, b["cond"].to(base.alpha_bar.device))], steps=steps,
                      beta=beta, seed=seed).float().cpu()
    return {**summarize(fidelity_fn(base.cfg.data)[0](images, b)), **KID(base, condition=condition)(images, b["cond"]),
            "n": n}


@torch.no_grad()
def bounds(base, protocol: EvalProtocol, seeds=(1, 2, 3)) -> dict:
    """The calibration rows on the final evaluation's held-out set: ground truth and the base alone
    (one row per sampling seed; a run with seed k samples its final evaluation with seed k + 1)."""
    n, fid = protocol.final_n, FID(base)
    measure = fidelity_fn(base.cfg.data)[0]
    gt = {name: {**summarize(measure(b["image"], b)), "fid": fid(b["image"])}
          for name, b in settings_batches(base, n)}
    base_rows = {f"seed{s}": evaluate_settings(base, None, n, steps=protocol.val_steps, beta=protocol.val_beta,
                                               seed=s, fid=fid)[0] for s in seeds}
    return {"ground_truth": gt, "base": base_rows}


@torch.no_grad()
def validation_bounds(base, protocol: EvalProtocol, seeds=range(10)) -> dict:
    """The validation curves' calibration: the fidelity of the ground truth and of the base alone (one row per
    sampler seed: a run with seed k validates with sampler seed k) on the validation's own conditions, prompt,
    DDIM steps and CFG scale. A zero-initialised control adds exact zeros, so its step-0 validation is its seed's
    row here."""
    measure, key = fidelity_fn(base.cfg.data)
    vb = dataset(base.cfg.data, size=base.cfg.size, cond_factor=1, seed=VAL_SEED).batch(range(protocol.val_n))
    prompts = prompts_for_setting(vb, protocol.val_prompt)
    rows = {str(s): summarize(measure(generate(base, prompts, steps=protocol.val_steps, beta=protocol.val_beta,
                                               seed=s).float().cpu(), vb))[key] for s in seeds}
    return {"key": key, "val_n": protocol.val_n, "val_steps": protocol.val_steps, "val_beta": protocol.val_beta,
            "val_prompt": protocol.val_prompt, "ground_truth": summarize(measure(vb["image"], vb))[key], "base": rows}


@torch.no_grad()
def base_quality(base, n: int = 256, betas=(3.0, 5.0, 9.0), steps: int = 20, seed: int = 0, chunk: int = 128) -> dict:
    data = Fill50K(size=base.cfg.size, cond_factor=1, seed=VAL_SEED)     # conditions unused
    batch = data.batch(range(n))
    out = {"ground_truth": summarize(fidelity(batch["image"], batch))}
    for beta in betas:
        imgs = torch.cat([generate(base, batch["prompt"][i:i + chunk], steps=steps, beta=beta, seed=seed + i)
                          for i in range(0, n, chunk)])
        m = fidelity(imgs, batch)
        m["both_ok"] = m["fill_ok"] * m["bg_ok"]
        out[f"cfg_{beta:g}"] = summarize(m)
    return out
