"""Sample images as readers see them: tiled grids, each sample with its condition's outline drawn over it (a thin
two-colour dashed line, visible on any background) and the prompts under the conditions."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..lab.claims import HELD_OUT
from ..lab.results import final_images, results_root, study_images
from ..mini.data import VAL_SEED, dataset, grid


OUTLINE_COLOURS = (("white", "black"), ("yellow", "magenta"))   # each condition: a line, dashes over it
TILE_IN = 1.0       # inches per sample tile: at the figures' 100 dpi, a 32x32 sample is drawn at 100x100 px
DPI = 100


def outline(cond) -> np.ndarray:
    """What to draw of each condition, as one (B,H,W) mask: a line drawing (a disc's outline, edges: most lit
    pixels on the lit region's border) as it is; a map of regions (segmentation, depth) by its boundaries."""
    c = torch.as_tensor(np.asarray(cond)).float()
    c = c / 255 if c.max() > 1.5 else (c + 1) / 2 if c.min() < 0 else c
    lit = (c.amax(1, keepdim=True) > 0.5).float()
    inner = -torch.nn.functional.max_pool2d(-lit, 3, stride=1, padding=1)        # lit with all 8 neighbours lit
    thin = (lit - inner).flatten(1).sum(1) > 0.6 * lit.flatten(1).sum(1)
    gy = (c[..., 1:, :] - c[..., :-1, :]).abs().sum(1)
    gx = (c[..., :, 1:] - c[..., :, :-1]).abs().sum(1)
    edges = (torch.nn.functional.pad(gy, (0, 0, 0, 1)) + torch.nn.functional.pad(gx, (0, 1))) > 0.3
    return torch.where(thin[:, None, None], lit[:, 0] > 0, edges).numpy()


def centre_line(mask: np.ndarray) -> np.ndarray:
    """A field whose 0.5 contour runs along the middle of a drawn outline: a closed outline (the disc's) as the
    edge of the region it encloses, its own width split in half; an open one (scene edges) around its pixels."""
    from scipy import ndimage      # deferred: only the figures need it
    filled = ndimage.binary_fill_holes(mask)
    inside = filled & ~mask
    if not inside.any():
        return mask.astype(float)
    return ndimage.gaussian_filter((filled.astype(float) + inside) / 2, 0.7)     # 0 out, 0.5 on it, 1 in


def show_images(ax, images, nrow: int = 8, title: str | None = None, cond=None, captions=None):
    """images: (B,3,H,W) float in [-1,1] or uint8; drawn as one tiled grid without axes. `cond` (the conditions
    the images were made from, any range; a list for several): their outline is drawn over each image, so a reader sees at a glance
    whether a sample follows its condition."""
    x = torch.as_tensor(np.asarray(images))
    x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()
    g = grid(x, nrow=nrow)
    ax.imshow(((g.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy(), interpolation="nearest")
    for c, (under, over) in zip(cond if isinstance(cond, list) else [] if cond is None else [cond], OUTLINE_COLOURS):
        line = torch.as_tensor(np.stack([centre_line(m) for m in outline(c)[: len(x)]])).float()[:, None]
        field = 1 - grid(1 - line.expand(-1, 3, -1, -1), nrow=nrow)[0].numpy()    # the grid's padding: 0, clear
        # a thin dashed line in two colours along the outline: visible on any background, and narrow enough that
        # the sample's own edge can be judged against it
        ax.contour(field, levels=[0.5], colors=under, linewidths=1.0)
        ax.contour(field, levels=[0.5], colors=over, linewidths=1.0, linestyles=[(0, (2, 2))])
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    h, w = x.shape[-2:]
    for k, text in enumerate(captions or []):      # under each tile, wrapped to the tile's width
        r, q = divmod(k, min(nrow, len(x)))
        ax.text(1 + q * (w + 1) + w / 2, (r + 1) * (h + 1) + 0.5, textwrap.fill(text, 16) or "(empty)",
                ha="center", va="top", fontsize=5.5)
    if captions:
        ax.set_ylim(g.shape[1] + 0.4 * h, -0.5)     # room for the captions inside the axes


def image_rows(rows: list[tuple], k: int, captions: dict[int, list[str]] | None = None):
    """A figure of labelled image rows (title, images[, conditions to outline]), each tile TILE_IN wide;
    captions: row index -> a text under each of its tiles (the prompts)."""
    captions = captions or {}
    heights = [TILE_IN + 0.3 + (0.4 * TILE_IN if i in captions else 0) for i in range(len(rows))]
    fig, axes = plt.subplots(len(rows), 1, figsize=(k * TILE_IN, sum(heights)), dpi=DPI,
                             gridspec_kw={"height_ratios": heights})
    for i, (ax, row) in enumerate(zip(np.atleast_1d(axes), rows)):
        show_images(ax, row[1], nrow=k, title=row[0], cond=row[2] if len(row) > 2 else None,
                    captions=captions.get(i))
    fig.tight_layout()
    return fig


def held_out(cfg: dict, size: int, k: int) -> dict:
    """The first k held-out conditions (at image size) and prompts of a run's data: what its validation draws."""
    return dataset(cfg.get("data", "fill50k"), size=size, cond_factor=1, seed=VAL_SEED,
                   condition=cfg.get("condition", "outline")).batch(range(k))


def show_final_grid(by: dict[str, list[dict]], root: Path, settings=HELD_OUT, k: int = 8, seed: int = 0):
    """Rows: variants x prompt settings, k held-out conditions each (the first row: the conditions)."""
    rows, shown, captions = [], set(), {}
    for name, rs in by.items():
        r = next((r for r in rs if r["seed"] == seed), rs[0])
        imgs = [(s, final_images(r, s, root)) for s in settings]
        imgs = [(s, x[:k]) for s, x in imgs if x is not None]
        if not imgs:
            continue
        b = held_out(rs[0]["config"], imgs[0][1].shape[-1], k)
        c = b["cond"]
        kind = (rs[0]["config"].get("data", "fill50k"), rs[0]["config"].get("condition", "outline"))
        if kind not in shown:       # each kind of condition once, above the first rows made from it, with its prompts
            captions[len(rows)] = list(b["prompt"])
            rows.append((f"held-out conditions ({kind[1]}) and their perfect prompts; the outline is drawn dashed "
                         "over every sample below", c * 2 - 1))
            shown.add(kind)
        rows += [(f"{name}, {s.split('/')[1]} prompt", x, c) for s, x in imgs]
    if not rows:
        print("no final images in these results")
        return
    image_rows(rows, k, captions)
    plt.show()


def show_study_grid(result: dict, names: list[str], root: Path | None = None, k: int = 8):
    """The conditions the settings `names` used (each once, with its scene set), then the first k images of
    each setting (one trained seed, same noise), the outline of every condition it used drawn over it."""
    imgs = study_images(result, root)
    size = next(iter(imgs.values())).shape[-1]
    used = {s["name"]: list(zip(s["nets"], s["scenes"])) for s in result["config"]["settings"]}
    start = {"same": 0, "other": result["config"]["n"]}
    batches = {(net, sc): dataset("scenes", size=size, cond_factor=1, seed=VAL_SEED, condition=net)
               .batch(range(start[sc], start[sc] + k)) for n in names for net, sc in used[n]}
    conds = {u: b["cond"] for u, b in batches.items()}
    where = {"same": "the held-out scenes", "other": "other scenes"}
    rows = [(f"condition: {net} of {where[sc]}; under it, the scene's prompt (what the perfect prompt says)",
             x * 2 - 1) for (net, sc), x in conds.items()]
    captions = {i: list(b["prompt"]) for i, b in enumerate(batches.values())}
    rows += [(f"{n} (outlined: {' + '.join(f'{net} of {where[sc]}' for net, sc in used[n])})", imgs[n][:k],
              [conds[u] for u in used[n]]) for n in names]
    return image_rows(rows, k, captions)


def show_gain_grid(result: dict, names: dict[str, str], root: Path | None = None, k: int = 8):
    """The gain study's validation conditions, then the first k images of each row in `names` (row -> label; one
    seed, the same noise in every row), the condition's outline drawn over each."""
    imgs = study_images(result, root)
    source = results_root(root) / next(iter(result["controlnets"].values()))
    b = held_out(json.loads(source.read_text())["config"], imgs[next(iter(names))].shape[-1], k)
    rows = [("validation conditions and their prompts; the outline is drawn dashed over every sample below",
             b["cond"] * 2 - 1)]
    rows += [(label, imgs[n][:k], b["cond"]) for n, label in names.items()]
    return image_rows(rows, k, {0: list(b["prompt"])})
