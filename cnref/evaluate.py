"""Evaluation under the paper's four prompt settings, and the bounds every ablation table prints.

- `evaluate_settings`: the final evaluation of a trained ControlNet (or of the base alone): condition
  fidelity, prompt fidelity and FID per prompt setting on held-out conditions, and on training ones.
- `python -m cnref.evaluate bounds --preset cpu`: Table 2's calibration rows, from the same held-out set and
  sampler as every run's final evaluation: ground-truth targets (upper bound) and the locked base without
  control (lower bound; its disc is anywhere, so its IoU is what a ControlNet must beat).
- `python -m cnref.evaluate base --preset cpu`: how often the base's samples show the prompt's colours.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .base import load_base
from .data import PROMPT_SETTINGS, SCENE_SETTINGS, VAL_SEED, Fill50K, dataset, with_setting
from .metrics import FID, fidelity, fidelity_fn, summarize
from .provenance import provenance
from .sample import generate

ROOT = Path(__file__).resolve().parent.parent


def settings_batches(base, n: int, train_batch: dict | None = None, condition: str = "outline",
                     cond_factor: int | None = None) -> list[tuple[str, dict]]:
    """(name, batch) for each evaluation set: held-out conditions under each prompt setting of the base's
    dataset (Fill50K: the paper's four; scenes: perfect and none), and training conditions with the perfect
    prompt when train_batch is given. cond_factor None: the base's."""
    held = dataset(base.cfg.data, size=base.cfg.size, cond_factor=cond_factor or base.cfg.cond_factor, seed=VAL_SEED,
                   condition=condition).batch(range(n))
    settings = PROMPT_SETTINGS if base.cfg.data == "fill50k" else SCENE_SETTINGS
    sets = [(f"held_out/{s}", with_setting(held, s)) for s in sorted(settings)]
    return sets + ([("train/perfect", with_setting(train_batch, "perfect"))] if train_batch is not None else [])


@torch.no_grad()
def evaluate_settings(base, controlnet, n: int, *, steps: int, beta: float, seed: int,
                      train_batch: dict | None = None, fid: FID | None = None, condition: str = "outline",
                      cond_factor: int | None = None) -> tuple[dict, dict]:
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
        images_u8[name] = ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return out, images_u8


@torch.no_grad()
def bounds(base, n: int, *, steps: int, beta: float, seeds=(1, 2, 3)) -> dict:
    """Table 2's calibration rows on the final evaluation's held-out set: ground truth and the base alone
    (one row per sampling seed; a run with seed k samples its final evaluation with seed k + 1)."""
    fid = FID(base)
    measure = fidelity_fn(base.cfg.data)[0]
    gt = {name: {**summarize(measure(b["image"], b)), "fid": fid(b["image"])}
          for name, b in settings_batches(base, n)}
    base_rows = {f"seed{s}": evaluate_settings(base, None, n, steps=steps, beta=beta, seed=s, fid=fid)[0]
                 for s in seeds}
    return {"ground_truth": gt, "base": base_rows}


@torch.no_grad()
def base_quality(base, n: int = 256, betas=(3.0, 5.0, 9.0), steps: int = 20, seed: int = 0, chunk: int = 128) -> dict:
    data = Fill50K(size=base.cfg.size, cond_factor=base.cfg.cond_factor, seed=VAL_SEED)
    batch = data.batch(range(n))
    out = {"ground_truth": summarize(fidelity(batch["image"], batch))}
    for beta in betas:
        imgs = torch.cat([generate(base, batch["prompt"][i:i + chunk], steps=steps, beta=beta, seed=seed + i)
                          for i in range(0, n, chunk)])
        m = fidelity(imgs, batch)
        m["both_ok"] = m["fill_ok"] * m["bg_ok"]
        out[f"cfg_{beta:g}"] = summarize(m)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m cnref.evaluate", description=__doc__)
    sub = ap.add_subparsers(dest="what", required=True)
    b = sub.add_parser("base", help="colour fidelity of the shipped base")
    b.add_argument("--preset", default="cpu", choices=["smoke", "cpu", "gpu"])
    b.add_argument("--n", type=int, default=256)
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--betas", type=float, nargs="+", default=[3.0, 5.0, 9.0])
    b.add_argument("--out", type=Path)
    bd = sub.add_parser("bounds", help="ground-truth and base-alone rows for the ablation tables")
    bd.add_argument("--preset", default="cpu", choices=["smoke", "cpu", "gpu"])
    bd.add_argument("--data", default="fill50k", choices=["fill50k", "scenes"])
    bd.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    device = "cuda" if torch.cuda.is_available() else "cpu"     # sampling follows the base's device
    if a.what == "bounds":
        from .train import ControlNetTrainConfig
        cfg = ControlNetTrainConfig.preset_default(a.preset)     # the final evaluation's set and sampler
        res = {"provenance": provenance(), "preset": a.preset, "data": a.data, "n": cfg.final_n,
               "ddim_steps": cfg.val_steps, "beta": cfg.val_beta,
               **bounds(load_base(a.preset, a.data).to(device), cfg.final_n, steps=cfg.val_steps, beta=cfg.val_beta)}
        name = "bounds.json" if a.data == "fill50k" else f"bounds_{a.data}.json"
        out = a.out or ROOT / "experiments" / "bounds" / a.preset / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1))
        print(json.dumps({k: res[k] for k in ("ground_truth", "base")}, indent=1))
        return
    res = base_quality(load_base(a.preset).to(device), a.n, a.betas, a.steps)
    res = {"provenance": provenance(), "preset": a.preset, "n": a.n, "ddim_steps": a.steps, "results": res}
    print(json.dumps(res["results"], indent=1))
    out = a.out or ROOT / "experiments" / "base" / a.preset / "quality.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
