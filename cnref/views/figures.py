"""Figures: curves with their spread over seeds, final metrics per prompt setting, the studies' sweeps and
trade-offs, condition use and the SD1.5-scale bench (sample grids: `cnref.views.images`). They read results; they
compute nothing new."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..paper.guidance import MODES
from ..lab.claims import HELD_OUT, value


# What each measured key is, for axis labels and titles (a reader should never have to decode a key).
LABELS = {
    "iou": "disc IoU with the condition",
    "loss": "training loss (Eq. 3)",
    "fid": "FID (lower is better)",
    "kid": "KID x 1e3 of (image, condition) pairs (lower is better)",
    "fill_ok": "fill colour right (share)",
    "bg_ok": "background colour right (share)",
    "color_ok": "colours right (share)",
    "edge_f1": "edge F1 with the condition",
}


# One colour per concept across the book: a guidance mode, a design, a prompt setting keeps its colour in every
# figure (matplotlib's tab10); names not listed take the next free default colour.
COLOURS = {"both": "tab:blue", "cond_only": "tab:orange", "cond_only_weighted": "tab:red",
           "cond_only_normalized": "tab:green",
           "controlnet": "tab:blue", "t2i_adapter": "tab:orange", "t2i_adapter_cubic": "tab:brown",
           "controlnet_xs": "tab:purple", "controlnext": "tab:pink",
           "perfect": "tab:blue", "none": "tab:gray", "insufficient": "tab:olive", "conflicting": "tab:cyan"}


def colour(name: str):
    """The book's colour of a mode, design or prompt setting (None: matplotlib's next)."""
    return COLOURS.get(name)


def colours(names) -> dict:
    """A colour for each of `names` in one figure: the book's where it has one, otherwise the first of
    matplotlib's ten that none of the others holds (so that a variant never takes the fixed colour of another)."""
    fixed = {n: COLOURS[n] for n in names if n in COLOURS}
    free = iter(c for c in (f"tab:{c}" for c in ("blue", "orange", "green", "red", "purple", "brown", "pink", "gray",
                                                  "olive", "cyan")) if c not in fixed.values())
    return {n: fixed.get(n) or next(free, None) for n in names}


def metric_label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " "))


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


def plot_curves(axes, by: dict[str, list[dict]], keys=("iou", "loss"), refs: dict | None = None):
    """Validation curves per variant: mean over seeds with the min-max band. refs: key -> [(value, label, style)]
    horizontal reference lines (the base alone, the ground truth, the convergence level); the loss, which falls
    over decades, on a log axis."""
    cs = colours(by)
    for ax, key in zip(np.atleast_1d(axes), keys):
        for name, rs in by.items():
            hs = [[h for h in r["history"] if h.get(key) is not None] for r in rs]
            plot_spread(ax, [([h["step"] for h in hist], [h[key] for h in hist]) for hist in hs], name, cs[name])
        reference_lines(ax, (refs or {}).get(key, []))
        if key == "loss":
            ax.set_yscale("log")
        ax.set_xlabel("training step"); ax.set_ylabel(metric_label(key)); ax.set_title(f"{metric_label(key)} during training")
        ax.legend(fontsize=7, loc="best", framealpha=0.8)


def plot_against_time(ax, by: dict[str, list[dict]], key: str = "iou", mark: float | None = None, refs=None):
    """Each run's validation curve against its seconds of training (validation excluded), one line per seed in its
    variant's colour (seeds do not share these x values, so no band); `mark`: a vertical line at that many seconds
    (an equal-compute comparison's)."""
    cs = colours(by)
    for name, rs in by.items():
        for i, r in enumerate(rs):
            h = [x for x in r["history"] if x.get(key) is not None and "train_s" in x]
            ax.plot([x["train_s"] for x in h], [x[key] for x in h], color=cs[name], lw=1,
                    label=f"{name} ({len(rs)} seed{'s' if len(rs) > 1 else ''})" if i == 0 else None)
    reference_lines(ax, refs or [])
    if mark is not None:
        ax.axvline(mark, color="0.3", lw=1, ls="-.", label=f"equal compute: {mark:g} s")
    ax.set_xlabel("seconds of training (validation excluded)"); ax.set_ylabel(metric_label(key))
    ax.set_title(f"{metric_label(key)} against training time")
    ax.legend(fontsize=7, loc="best", framealpha=0.8)


def reference_lines(ax, refs) -> None:
    """Horizontal reference lines, refs: [(value, label, style)], as `AblationReport.references()` gives them."""
    for y, label, style in refs:
        ax.axhline(y, lw=1, label=label, **style)


# reference lines in black and grey, so that no variant's colour can be mistaken for one
REF_STYLES = {"ground truth": {"color": "black"}, "base alone": {"color": "black", "ls": "--"},
              "convergence level": {"color": "0.45", "ls": ":"}}


def _hl(style: dict) -> dict:
    """A line style as `hlines` takes it."""
    return {"colors": style["color"], "linestyles": {"--": "dashed", ":": "dotted"}.get(style.get("ls"), "solid")}


def plot_final(ax, by: dict[str, list[dict]], key: str = "iou", settings=HELD_OUT, bnd: dict | None = None):
    """Final metric per prompt setting: one dot per seed, a bar at the mean; the bounds as lines."""
    n, cs = len(by), colours(by)
    for i, (name, rs) in enumerate(by.items()):
        xs = np.arange(len(settings)) + (i - (n - 1) / 2) * 0.8 / n
        vals = np.array([[value(r, key, s) for s in settings] for r in rs])
        ax.bar(xs, vals.mean(0), width=0.8 / n, alpha=0.5, label=name, color=cs[name])
        for v in vals:
            ax.plot(xs, v, "k.", ms=4)
    if bnd:
        for j, s in enumerate(settings):
            if s in bnd["ground_truth"]:
                ax.hlines(bnd["ground_truth"][s][key], j - 0.45, j + 0.45, lw=1, **_hl(REF_STYLES["ground truth"]))
            rows = [r[s][key] for r in bnd["base"].values() if s in r]
            if rows:
                ax.hlines(np.mean(rows), j - 0.45, j + 0.45, lw=1, **_hl(REF_STYLES["base alone"]))
    ax.set_xticks(range(len(settings)), [f"{s.split('/')[1]} prompt" for s in settings])
    ax.set_ylabel(metric_label(key))
    ax.set_title(f"after training: {metric_label(key)}\n(dots: seeds; solid: ground truth; dashed: base alone)", fontsize=9)
    ax.legend(fontsize=8, loc="upper center", ncol=min(n, 5), bbox_to_anchor=(0.5, -0.1))   # below: bars reach 1


def plot_sweep(ax, results: list[dict], names: list[str], xs: list[float], key: str, label: str):
    """One line (mean over seeds, band = min-max) through the settings `names` placed at `xs`, in the colour of
    `label` where it names a mode or a design."""
    curves = [(xs, [r["results"][n][key] for n in names]) for r in results]
    return plot_spread(ax, curves, label, colour(label))


def plot_rows(ax, results: list[dict], names: list[str], key: str, clip: list[str] = ()):
    """One horizontal bar per setting (the mean over seeds) with each seed's value as a dot; the first name on top.
    Settings in `clip` (a calibration row far beyond the others, such as noise) leave the axis' range to the rest:
    their bar runs to the edge with its mean written on it, so the rows that matter are not squeezed."""
    ys = np.arange(len(names))[::-1]
    vals = {n: [r["results"][n][key] for r in results] for n in names}
    rest = [v for n in names if n not in clip for v in vals[n]]
    edge = max(rest) * 1.15 if clip and rest and max(rest) > 0 else None
    for y, n in zip(ys, names):
        mean = float(np.mean(vals[n]))
        if edge is not None and n in clip and mean > edge:
            ax.barh(y, edge, color="0.8", hatch="//")
            ax.text(edge, y, f"{mean:.3g} (off the axis) ", ha="right", va="center", fontsize=8)
            continue
        ax.barh(y, mean, color="0.8")
        ax.plot(vals[n], [y] * len(vals[n]), "o", color="C0", ms=4)
    if edge is not None:
        ax.set_xlim(right=edge)
    ax.set_yticks(ys, names, fontsize=8)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xlabel(metric_label(key))


def plot_tradeoff(ax, results: list[dict], names: list[str], label: str, x: str = "color_ok", y: str = "edge_f1",
                  marks: list | None = None):
    """A trade-off curve: the settings `names` (e.g. one mode at rising beta) as points (mean over seeds,
    bars = min-max) in the (x, y) plane, joined in order, the first and the rest labelled by `marks`."""
    xs = np.array([[r["results"][n][x] for n in names] for r in results])
    ys = np.array([[r["results"][n][y] for n in names] for r in results])
    line, = ax.plot(xs.mean(0), ys.mean(0), "o-", label=label, ms=4, color=colour(label))
    ax.errorbar(xs.mean(0), ys.mean(0), xerr=[xs.mean(0) - xs.min(0), xs.max(0) - xs.mean(0)],
                yerr=[ys.mean(0) - ys.min(0), ys.max(0) - ys.mean(0)], fmt="none", color=line.get_color(), alpha=0.4)
    for m, px, py in zip(marks or [], xs.mean(0), ys.mean(0)):
        ax.annotate(str(m), (px, py), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(metric_label(x)); ax.set_ylabel(metric_label(y))
    return line


def plot_cfg(results: list[dict], keys=("edge_f1", "color_ok")):
    """Fig. 5 as curves: each metric against the guidance scale, a line per mode, no prompt | perfect prompt."""
    betas = sorted({float(n.split("/beta")[1].split("/")[0]) for n in results[0]["results"]})
    fig, axes = plt.subplots(len(keys), 2, figsize=(12, 3.2 * len(keys)), squeeze=False)
    for j, p in enumerate(("none", "perfect")):
        for i, k in enumerate(keys):
            ax = axes[i, j]
            for m in sorted(MODES):
                plot_sweep(ax, results, [f"{m}/beta{b:g}/{p}" for b in betas], betas, k, m)
            ax.set_xlabel("guidance scale beta"); ax.set_ylabel(metric_label(k))
            ax.set_title(f"{metric_label(k)}, {p} prompt"); ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_condition_use(axes, runs: list[dict]):
    """Fig. 4 with condition use (cnref.mini.use), a colour per seed: the IoU with its spread over the validation's
    sampler seeds; condition use (Eq. 3's loss, blank minus true condition) on a linear and on a log axis; the
    training loss (solid) beside the fall that condition use implies (dashed: the first logged loss minus the gap's
    growth since then)."""
    ax_iou, ax_lin, ax_log, ax_loss = axes
    for k, r in enumerate(runs):
        h, c = r["history"], f"C{k}"
        s = [x["step"] for x in h]
        ax_iou.plot(s, [x["iou"] for x in h], color=c, label=f"seed {r['seed']}")
        if h[0].get("iou_seeds"):
            ax_iou.fill_between(s, [min(x["iou_seeds"]) for x in h], [max(x["iou_seeds"]) for x in h], color=c,
                                alpha=0.2, lw=0)
        gap = np.array([x["use_loss_gap"] for x in h])
        ax_lin.plot(s, gap, color=c)
        pos = gap > 0                              # a log axis shows where the gap is positive
        ax_log.plot(np.array(s)[pos], gap[pos], color=c, marker=".", ms=3)
        logged = [(i, x["loss"]) for i, x in enumerate(h) if x.get("loss") is not None]
        if logged:
            i0, l0 = logged[0]
            ax_loss.plot([s[i] for i, _ in logged], [v for _, v in logged], color=c, lw=0.8, alpha=0.7)
            ax_loss.plot(s[i0:], l0 - (gap[i0:] - gap[i0]), color=c, ls="--")
    ax_iou.set_title("IoU (band: 3 sampler seeds, same checkpoint)"); ax_iou.set_ylabel("disc IoU"); ax_iou.legend()
    ax_lin.set_title("condition use: loss gap (linear)"); ax_lin.set_ylabel("loss(blank) - loss(condition)")
    ax_log.set_yscale("log"); ax_log.set_title("condition use (log axis)")
    ax_loss.set_title("training loss (solid) and the fall condition use implies (dashed)"); ax_loss.set_ylabel("Eq. 3 loss")
    for ax in axes:
        ax.set_xlabel("training step")
