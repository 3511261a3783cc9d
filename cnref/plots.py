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
