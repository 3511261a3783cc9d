"""Fidelity metrics on generated Fill50K images (the paper's Table 2 idea: re-detect, then compare).

- condition fidelity: IoU between the disc re-detected in the image and the exact disc of the condition;
- prompt fidelity: colour error of the detected fill and background against the prompt's colours, and
  whether the nearest palette colour is the prompt's (a yes/no that needs no threshold).

The detector ignores the prompt: it splits each image into two colour clusters (2-means, initialised at
the border's mean colour, where Fill50K discs never reach, and the pixel farthest from it) and calls the
cluster that does not own the border the disc. So a disc of the wrong colour still counts for the
condition, and the two fidelities stay separate.
"""
from __future__ import annotations

import torch

from ..checks import check_choice, check_tensor
from .data import COLORS, DATASETS
from .data.scenes import canny


def detect_disc(images: torch.Tensor, iters: int = 6) -> torch.Tensor:
    """(B,3,H,W) in [-1,1] -> bool (B,1,H,W): the pixels of the cluster that is not the background."""
    check_tensor("images", images, ndim=4, channels=3)
    b, c, h, w = images.shape
    x = images.float().flatten(2).transpose(1, 2)                    # (B, HW, 3)
    border = torch.zeros(h, w, dtype=torch.bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    bg = x[:, border.flatten()].mean(1)                               # (B, 3)
    d_bg = (x - bg[:, None]).norm(dim=-1)
    fg = x[torch.arange(b), d_bg.argmax(1)]
    for _ in range(iters):
        is_fg = (x - fg[:, None]).norm(dim=-1) < (x - bg[:, None]).norm(dim=-1)     # (B, HW)
        m = is_fg.float()[..., None]
        fg = torch.where(m.sum(1) > 0, (m * x).sum(1) / m.sum(1).clamp(min=1), fg)
        bg = torch.where((1 - m).sum(1) > 0, ((1 - m) * x).sum(1) / (1 - m).sum(1).clamp(min=1), bg)
    is_fg = (x - fg[:, None]).norm(dim=-1) < (x - bg[:, None]).norm(dim=-1)
    # the background owns the border: if the "disc" cluster holds most border pixels, swap
    swap = is_fg[:, border.flatten()].float().mean(1) > 0.5
    is_fg = torch.where(swap[:, None], ~is_fg, is_fg)
    return is_fg.view(b, 1, h, w)


def iou(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Per-image intersection over union of two boolean masks (B,1,H,W) -> (B,)."""
    inter = (pred & true).flatten(1).sum(1).float()
    union = (pred | true).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def nearest_color(rgb: torch.Tensor) -> torch.Tensor:
    """(B,3) in [-1,1] -> index of the nearest palette colour."""
    return torch.cdist(rgb.float(), COLORS).argmin(1)


def region_mean(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.float()
    return (images * m).sum((2, 3)) / m.sum((2, 3)).clamp(min=1)


def fidelity(images: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
    """Per-image metrics of generated images against a Fill50K batch (its exact mask and prompt colours).

    iou: condition fidelity. fill_err / bg_err: RMS colour error in [0,1] RGB units of the detected disc /
    background means against the prompt's colours. fill_ok / bg_ok: nearest palette colour is the prompt's.
    """
    mask = detect_disc(images)
    fill_rgb, bg_rgb = region_mean(images, mask), region_mean(images, ~mask)
    fill_true, bg_true = COLORS[batch["fill"]], COLORS[batch["background"]]
    rms = lambda a, b: ((a - b) / 2).pow(2).mean(1).sqrt()
    return {"iou": iou(mask, batch["mask"]),
            "fill_err": rms(fill_rgb, fill_true), "bg_err": rms(bg_rgb, bg_true),
            "fill_ok": (nearest_color(fill_rgb) == batch["fill"]).float(),
            "bg_ok": (nearest_color(bg_rgb) == batch["background"]).float()}


# ---------------------------------------------------------------------------------------------------------
# Scenes: several shapes, so no two-cluster detector. Condition fidelity re-detects edges (the
# geometry every condition type describes), prompt fidelity reads each shape's colour where the scene says
# the shape is.
# ---------------------------------------------------------------------------------------------------------
def label_edges(visible: torch.Tensor) -> torch.Tensor:
    """(B,K,s,s) visible masks -> (B,1,s,s) bool: pixels whose region (a shape or the background) differs
    from a 4-neighbour's: the exact visible outline, one pixel each side of every boundary."""
    k = visible.shape[1]
    lab = (visible.long() * torch.arange(1, k + 1)[None, :, None, None]).sum(1, keepdim=True)   # 0 = background
    e = torch.zeros_like(lab, dtype=torch.bool)
    e[..., 1:, :] |= lab[..., 1:, :] != lab[..., :-1, :]
    e[..., :-1, :] |= lab[..., 1:, :] != lab[..., :-1, :]
    e[..., :, 1:] |= lab[..., :, 1:] != lab[..., :, :-1]
    e[..., :, :-1] |= lab[..., :, 1:] != lab[..., :, :-1]
    return e


def _near(mask: torch.Tensor, px: int = 1) -> torch.Tensor:
    """Dilation by px pixels (a (2px+1)^2 square): the tolerance of the edge match."""
    return torch.nn.functional.max_pool2d(mask.float(), 2 * px + 1, 1, px) > 0


def edge_f1(images: torch.Tensor, visible: torch.Tensor, px: int = 1) -> torch.Tensor:
    """Per-image F1 of OpenCV Canny edges of the image (the official annotator's thresholds) against the
    exact visible outline, each matched within px pixels. precision = detected edges near a true edge,
    recall = true edges near a detected edge; 0 when nothing is detected."""
    check_tensor("images", images, ndim=4, channels=3)
    det = canny(images.float().cpu())[:, :1] > 0
    true = label_edges(visible)
    p = (det & _near(true, px)).flatten(1).sum(1) / det.flatten(1).sum(1).clamp(min=1)
    r = (true & _near(det, px)).flatten(1).sum(1) / true.flatten(1).sum(1).clamp(min=1)
    return torch.where(p + r > 0, 2 * p * r / (p + r).clamp(min=1e-8), torch.zeros_like(p))


def _erode(mask: torch.Tensor) -> torch.Tensor:
    """One-pixel erosion (keeps anti-aliased rims out of colour means); a region it empties stays whole."""
    inner = -torch.nn.functional.max_pool2d(-mask.float(), 3, 1, 1) > 0
    keep = inner.flatten(2).any(-1)[..., None, None]
    return torch.where(keep, inner, mask)


def scene_fidelity(images: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
    """Per-image metrics of generated images against a Scenes batch.

    edge_f1: condition fidelity (edge_f1 above). color_ok: the fraction of the scene's shapes whose mean
    colour over their exact visible region (eroded by a pixel) has the prompt's colour as nearest palette
    colour; bg_ok the same for the background; color_err: RMS colour error in [0,1] RGB units over shapes.
    Colours are read where the scene puts each shape, so a misplaced shape also loses its colour.
    """
    check_tensor("images", images, ndim=4, channels=3)
    vis, col = batch["visible"], batch["color"]
    x = images.float().cpu()
    regions = _erode(torch.cat([vis, ~vis.any(1, keepdim=True)], 1))              # K shapes + background
    means = torch.einsum("bkhw,bchw->bkc", regions.float(), x) / regions.flatten(2).sum(-1)[..., None].clamp(min=1)
    present = (col >= 0) & vis.flatten(2).any(-1)
    want = torch.cat([col.clamp(min=0), batch["background"][:, None]], 1)          # (B, K+1)
    ok = (torch.cdist(means, COLORS[None].expand(len(x), -1, -1)).argmin(-1) == want).float()
    err = ((means - COLORS[want]) / 2).pow(2).mean(-1).sqrt()
    n = present.sum(1).clamp(min=1)
    return {"edge_f1": edge_f1(x, vis),
            "color_ok": (ok[:, :-1] * present).sum(1) / n, "bg_ok": ok[:, -1],
            "color_err": (err[:, :-1] * present).sum(1) / n}


def fidelity_fn(data: str):
    """The fidelity metrics of a dataset, and the key whose curve gives the convergence step."""
    check_choice("data", data, DATASETS)
    return (fidelity, "iou") if data == "fill50k" else (scene_fidelity, "edge_f1")


def summarize(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: round(float(v.float().mean()), 5) for k, v in metrics.items()}
