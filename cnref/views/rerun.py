"""A reader's rerun, shown against the committed seeds: the numbers side by side and one figure."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..lab.claims import group
from ..lab.convergence import judged
from ..lab.results import load_results
from .figures import plot_spread


def _fmt(xs: list) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "never"
    return f"{np.mean(xs):.0f}" if len(xs) == 1 else f"{np.mean(xs):.0f} ± {np.std(xs, ddof=1):.0f} ({min(xs):.0f}-{max(xs):.0f})"


def _at(r: dict, key: str, step: int) -> float | None:
    """A run's validation value of `key` at `step` (None if it has no validation there)."""
    return next((h[key] for h in r["history"] if h["step"] == step and h.get(key) is not None), None)


def compare_to_committed(ablation: str, preset: str, new_root: Path, committed_root: Path, seeds: list[int],
                         out: Path) -> Path:
    """Print each variant's new runs (convergence step, IoU at their last validation) next to the committed seeds'
    (their IoU at the same step), and draw the new IoU curves over the committed seeds' band (and the loss)
    into `out`."""
    new = group(judged([r for r in load_results(ablation, preset, new_root) if r["seed"] in seeds], preset,
                       committed_root), ablation, preset)
    old = group(judged(load_results(ablation, preset, committed_root), preset, committed_root), ablation, preset)
    key = "edge_f1" if next(iter(new.values()))[0]["config"].get("data") == "scenes" else "iou"
    fig = Figure(figsize=(12, 3.8))        # drawn straight to a file: no window, no global backend
    axes = fig.subplots(1, 2)
    for name, rs in new.items():
        ref = old.get(name, [])
        step = min(r["history"][-1]["step"] for r in rs)     # a shorter rerun is compared at its own last step
        at = [_at(r, key, step) for r in ref]
        at = [x for x in at if x is not None]
        print(f"{ablation}/{name}: this run{'s' if len(rs) > 1 else ''} (seed {', '.join(str(r['seed']) for r in rs)}): "
              f"convergence step {_fmt([r['convergence_step'] for r in rs])}, {key} at step {step} "
              f"{np.mean([_at(r, key, step) for r in rs]):.3f}"
              + (f"; committed ({len(ref)} seeds): step {_fmt([r['convergence_step'] for r in ref])}, {key} at step "
                 f"{step} {np.mean(at):.3f} ({min(at):.3f}-{max(at):.3f})" if at else
                 "; nothing committed to compare with"))
        for ax, k in zip(axes, (key, "loss")):
            if ref:
                plot_spread(ax, [([h["step"] for h in r["history"] if h.get(k) is not None],
                                  [h[k] for h in r["history"] if h.get(k) is not None]) for r in ref],
                            f"{name}: committed seeds")
            for r in rs:
                h = [x for x in r["history"] if x.get(k) is not None]
                ax.plot([x["step"] for x in h], [x[k] for x in h], lw=1.8, label=f"{name}: your seed {r['seed']}")
    axes[0].set(xlabel="training step", ylabel=f"held-out {key} (perfect prompt)",
                title="condition fidelity while training: yours over the committed band")
    axes[1].set(xlabel="training step", ylabel="training loss (mean since last validation)",
                title="training loss: no jump")
    for ax in axes:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"figure: {out}")
    return out
