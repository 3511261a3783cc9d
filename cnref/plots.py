"""Drawing helpers shared by the notebooks (they read results; the pictures are made here)."""
from __future__ import annotations

import numpy as np
import torch


def show_images(ax, images, nrow: int = 8, title: str | None = None):
    """images: (B,3,H,W) float in [-1,1] or uint8; drawn as one tiled grid without axes."""
    from .data import grid
    x = torch.as_tensor(np.asarray(images))
    x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()
    g = grid(x, nrow=nrow)
    ax.imshow(((g.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)


def mean_and_spread(curves: list[tuple[list, list]]):
    """Curves (x, y) with shared x -> x, mean, min, max over seeds (x truncated to the shortest)."""
    n = min(len(x) for x, _ in curves)
    x = np.asarray(curves[0][0][:n], dtype=float)
    ys = np.asarray([y[:n] for _, y in curves], dtype=float)
    return x, ys.mean(0), ys.min(0), ys.max(0)


def plot_spread(ax, curves, label: str, color=None):
    x, m, lo, hi = mean_and_spread(curves)
    line, = ax.plot(x, m, label=f"{label} (mean of {len(curves)})", color=color)
    ax.fill_between(x, lo, hi, alpha=0.25, color=line.get_color())
    return line


def plot_sd15_bench(res: dict):
    """Issue 7's figure from `python -m cnref.bench sd15` JSON: per mode, step time (dots: repeats) and peak
    memory, each relative to plain fine-tuning, with the paper's ControlNet (+34% time, +23% memory) and
    middle-only (1.6x faster than ControlNet) ratios as reference marks."""
    import matplotlib.pyplot as plt
    runs = res["runs"]
    fig, axes = plt.subplots(len(runs), 2, figsize=(12, 3.6 * len(runs)), squeeze=False)
    for (ax_t, ax_m), run in zip(axes, runs):
        modes = {k: v for k, v in run["modes"].items() if "median_step_s" in v}
        names = list(modes)
        plain = modes.get("plain", {})
        t_ref, m_ref = plain.get("median_step_s"), plain.get("peak_memory_gib")
        x = np.arange(len(names))
        ts = [np.asarray(modes[n]["step_s"]) / (t_ref or 1) for n in names]
        ax_t.bar(x, [np.median(t) for t in ts], alpha=0.5)
        for i, t in enumerate(ts):
            ax_t.plot([i] * len(t), t, "k.", ms=5)
        ax_m.bar(x, [modes[n]["peak_memory_gib"] / (m_ref or 1) for n in names], alpha=0.5, color="tab:orange")
        if t_ref:
            ax_t.axhline(1.34, color="red", ls="--", lw=1, label="paper: ControlNet = 1.34x plain")
            ax_m.axhline(1.23, color="red", ls="--", lw=1, label="paper: ControlNet = 1.23x plain")
            if "diffusers" in modes:
                r = modes["diffusers"]["median_step_s"] / t_ref / 1.6
                ax_t.axhline(r, color="purple", ls=":", lw=1, label="paper: mid-only 1.6x faster than ControlNet")
        unit = "plain fine-tuning" if t_ref else "s"
        ax_t.set_title(f"step time / {unit} (width {run['width']}, batch {run['batch']}, {run['device_kind']})")
        ax_m.set_title(f"peak memory / {unit.replace('s', 'GiB') if not t_ref else unit}")
        for ax in (ax_t, ax_m):
            ax.set_xticks(x, names, rotation=20)
            ax.axhline(1.0, color="gray", lw=0.8)
            ax.legend(fontsize=8)
    fig.suptitle(f"{res['provenance']['device']}, commit {res['provenance']['commit'][:10]}", fontsize=9)
    fig.tight_layout()
    return fig
