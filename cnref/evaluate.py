"""Quality of the locked base: how often a sample shows the prompt's fill and background colours.

`python -m cnref.evaluate base --preset cpu` samples the held-out prompts with DDIM + CFG (no control)
and writes experiments/base/<preset>/quality.json. The same detector as for ControlNets finds the disc;
with no condition its place is free, so the IoU with the held-out disc is the lower bound a ControlNet
must beat (Table 2's idea), and the ground-truth targets give the upper bound.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .base import load_base
from .data import VAL_SEED, Fill50K
from .metrics import fidelity, summarize
from .provenance import provenance
from .sample import generate

ROOT = Path(__file__).resolve().parent.parent


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
    a = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    res = base_quality(load_base(a.preset), a.n, a.betas, a.steps)
    res = {"provenance": provenance(), "preset": a.preset, "n": a.n, "ddim_steps": a.steps, "results": res}
    print(json.dumps(res["results"], indent=1))
    out = a.out or ROOT / "experiments" / "base" / a.preset / "quality.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
