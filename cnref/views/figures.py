"""Figures: images, curves with their spread over seeds, final metrics per prompt setting, sample grids,
the studies' sweeps and trade-offs, and the SD1.5-scale bench. They read results; they compute nothing new."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..data import VAL_SEED, dataset, grid
from ..guidance import MODES
from ..lab.claims import HELD_OUT, value
from ..lab.results import final_images, study_images
from ..lab.studies import NETS


def show_images(ax, images, nrow: int = 8, title: str | None = None):
    """images: (B,3,H,W) float in [-1,1] or uint8; drawn as one tiled grid without axes."""
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
    """The SD1.5-scale bench's figure from `python -m cnref bench sd15` JSON: per mode, step time (dots: repeats) and peak
    memory, each relative to plain fine-tuning, with the paper's ControlNet (+34% time, +23% memory) and
    middle-only (1.6x faster than ControlNet) ratios as reference marks."""
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


def plot_curves(axes, by: dict[str, list[dict]], keys=("iou", "loss")):
    """Validation curves per variant: mean over seeds with the min-max band."""
    for ax, key in zip(np.atleast_1d(axes), keys):
        for name, rs in by.items():
            hs = [[h for h in r["history"] if h.get(key) is not None] for r in rs]
            plot_spread(ax, [([h["step"] for h in hist], [h[key] for h in hist]) for hist in hs], name)
        ax.set_xlabel("step"); ax.set_title(key); ax.legend(fontsize=8)


def plot_final(ax, by: dict[str, list[dict]], key: str = "iou", settings=HELD_OUT, bnd: dict | None = None):
    """Final metric per prompt setting: one dot per seed, a bar at the mean; the bounds as lines."""
    n = len(by)
    for i, (name, rs) in enumerate(by.items()):
        xs = np.arange(len(settings)) + (i - (n - 1) / 2) * 0.8 / n
        vals = np.array([[value(r, key, s) for s in settings] for r in rs])
        ax.bar(xs, vals.mean(0), width=0.8 / n, alpha=0.5, label=name)
        for v in vals:
            ax.plot(xs, v, "k.", ms=4)
    if bnd:
        for j, s in enumerate(settings):
            if s in bnd["ground_truth"]:
                ax.hlines(bnd["ground_truth"][s][key], j - 0.45, j + 0.45, colors="green", lw=1)
            rows = [r[s][key] for r in bnd["base"].values() if s in r]
            if rows:
                ax.hlines(np.mean(rows), j - 0.45, j + 0.45, colors="red", lw=1, linestyles="--")
    ax.set_xticks(range(len(settings)), [s.split("/")[1] for s in settings])
    ax.set_title(f"final {key} (dots: seeds; green: ground truth; red dashed: base alone)")
    ax.legend(fontsize=8)


def show_final_grid(by: dict[str, list[dict]], root: Path, settings=HELD_OUT, k: int = 8, seed: int = 0):
    """Rows: variants x prompt settings, k held-out conditions each (the first row: the conditions)."""
    rows = []
    for name, rs in by.items():
        r = next((r for r in rs if r["seed"] == seed), rs[0])
        rows += [(f"{name} / {s.split('/')[1]}", final_images(r, s, root)) for s in settings]
    rows = [(t, x[:k]) for t, x in rows if x is not None]
    if not rows:
        print("no final images in these results")
        return
    size = rows[0][1].shape[-1]
    kinds = dict.fromkeys((rs[0]["config"].get("data", "fill50k"), rs[0]["config"].get("condition", "outline"))
                          for rs in by.values())
    conds = []
    for data, cond in kinds:
        c = dataset(data, size=size, cond_factor=1, seed=VAL_SEED, condition=cond).batch(range(k))["cond"]
        conds.append((f"held-out conditions ({cond})", c * 2 - 1))
    rows = conds + rows
    fig, axes = plt.subplots(len(rows), 1, figsize=(k * 0.8, 0.95 * len(rows)))
    for ax, (t, x) in zip(np.atleast_1d(axes), rows):
        show_images(ax, x, nrow=k, title=t)
    plt.tight_layout()
    plt.show()


def plot_sweep(ax, results: list[dict], names: list[str], xs: list[float], key: str, label: str):
    """One line (mean over seeds, band = min-max) through the settings `names` placed at `xs`."""
    curves = [(xs, [r["results"][n][key] for n in names]) for r in results]
    return plot_spread(ax, curves, label)


def plot_tradeoff(ax, results: list[dict], names: list[str], label: str, x: str = "fid", y: str = "edge_f1",
                  marks: list | None = None):
    """A trade-off curve: the settings `names` (e.g. one mode at rising beta) as points (mean over seeds,
    bars = min-max) in the (x, y) plane, joined in order, the first and the rest labelled by `marks`."""
    xs = np.array([[r["results"][n][x] for n in names] for r in results])
    ys = np.array([[r["results"][n][y] for n in names] for r in results])
    line, = ax.plot(xs.mean(0), ys.mean(0), "o-", label=label, ms=4)
    ax.errorbar(xs.mean(0), ys.mean(0), xerr=[xs.mean(0) - xs.min(0), xs.max(0) - xs.mean(0)],
                yerr=[ys.mean(0) - ys.min(0), ys.max(0) - ys.mean(0)], fmt="none", color=line.get_color(), alpha=0.4)
    for m, px, py in zip(marks or [], xs.mean(0), ys.mean(0)):
        ax.annotate(str(m), (px, py), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(x); ax.set_ylabel(y)
    return line


def plot_cfg(results: list[dict], keys=("edge_f1", "color_ok", "fid")):
    """Fig. 5 as curves: each metric against the guidance scale, a line per mode, no prompt | perfect prompt."""
    betas = sorted({float(n.split("/beta")[1].split("/")[0]) for n in results[0]["results"]})
    fig, axes = plt.subplots(len(keys), 2, figsize=(12, 3.2 * len(keys)), squeeze=False)
    for j, p in enumerate(("none", "perfect")):
        for i, k in enumerate(keys):
            ax = axes[i, j]
            for m in sorted(MODES):
                plot_sweep(ax, results, [f"{m}/beta{b:g}/{p}" for b in betas], betas, k, m)
            ax.set_xlabel("guidance scale beta"); ax.set_title(f"{k}, prompt: {p}"); ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def show_study_grid(result: dict, names: list[str], root: Path | None = None, conditions=NETS, k: int = 8):
    """The held-out conditions, then the first k images of each setting (one trained seed, same noise)."""
    imgs = study_images(result, root)
    size = next(iter(imgs.values())).shape[-1]
    rows = [(f"condition: {c}", dataset("scenes", size=size, cond_factor=1, seed=VAL_SEED, condition=c)
             .batch(range(k))["cond"] * 2 - 1) for c in conditions]
    rows += [(n, imgs[n][:k]) for n in names]
    fig, axes = plt.subplots(len(rows), 1, figsize=(k * 0.8, 0.95 * len(rows)))
    for ax, (t, x) in zip(np.atleast_1d(axes), rows):
        show_images(ax, x, nrow=k, title=t)
    fig.tight_layout()
    return fig
