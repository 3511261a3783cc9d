"""Procedural scenes: several shapes with named colours, occlusion, and exact ground truth for several
condition types. Like Fill50K, a sample is a pure function of (seed, index).

A scene is a background colour and 1..max_shapes shapes (circle, square, triangle), each with its own
colour, drawn in order: a later shape occludes the earlier ones (it is nearer). Every shape is a signed
distance field sd(x, y) in unit coordinates (negative inside), which gives at once the anti-aliased image,
the exact masks (pixel centre inside) and the outlines. Condition types, all (B, 3, s*f, s*f) in [0, 1]:

- `outline`: the visible edges of every shape, white on black (Fill50K's condition, for scenes);
- `canny`: OpenCV's Canny on the rendered image at the condition's resolution (the official
  annotator: thresholds 100 / 200), so it also sees anti-aliasing and colour contrast, not geometry;
- `segmentation`: the class of the nearest shape per pixel, colour-coded (circle red, square green,
  triangle blue, background black);
- `depth`: the drawing order of the nearest shape, nearer = brighter ((k+1)/max_shapes), background 0;
- `scribble`: the outline drawn thicker along a jittered boundary (a smooth random field per sample
  displaces the distance field), like a user's sketch.
Images are in [-1, 1]; prompts read "red circle and navy square and yellow triangle on lime background".
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ...checks import check_choice, check_positive, fail
from .fill50k import COLOR_NAMES, COLORS, TRAIN_SEED, sample_indices, to_uint8

SHAPES = ("circle", "square", "triangle")
CONDITIONS = ("outline", "canny", "segmentation", "depth", "scribble")
CLASS_COLORS = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float32)  # bg, shapes


def scene_prompt(shapes: list[int], colors: list[int], background: int) -> str:
    parts = [f"{COLOR_NAMES[c]} {SHAPES[s]}" for s, c in zip(shapes, colors)]
    return f"{' and '.join(parts)} on {COLOR_NAMES[background]} background"   # no commas: a word-level vocabulary


def scene_vocabulary() -> list[str]:
    words = {w for name in COLOR_NAMES for w in name.split()} | set(SHAPES) | {"and", "on", "background"}
    return sorted(words)


@dataclass(frozen=True)
class Scenes:
    size: int = 32
    cond_factor: int = 1
    condition: str = "outline"
    max_shapes: int = 3
    seed: int = TRAIN_SEED
    n: int | None = None

    def __post_init__(self):
        check_positive("size", self.size, integer=True)
        check_positive("cond_factor", self.cond_factor, integer=True)
        check_positive("max_shapes", self.max_shapes, integer=True)
        check_choice("condition", self.condition, set(CONDITIONS))
        if self.max_shapes >= len(COLOR_NAMES):
            fail("max_shapes", f"fewer than {len(COLOR_NAMES)} (one palette colour each, plus the background)",
                 self.max_shapes)
        if self.n is not None:
            check_positive("n", self.n, integer=True)

    def params(self, indices) -> dict[str, torch.Tensor]:
        """Per scene: K = max_shapes slots (absent shapes have shape -1), in drawing order."""
        idx = sample_indices(indices, self.n)
        K = self.max_shapes
        out = {k: np.zeros((len(idx), K)) for k in ("cx", "cy", "r", "angle")}
        out["shape"] = -np.ones((len(idx), K), dtype=np.int64)
        out["color"] = -np.ones((len(idx), K), dtype=np.int64)
        out["background"] = np.zeros(len(idx), dtype=np.int64)
        out["jitter"] = np.zeros((len(idx), 4, 3))
        for b, i in enumerate(idx.tolist()):
            rng = np.random.default_rng([self.seed, i, 9])      # 9: a stream of its own, apart from Fill50K's
            k = int(rng.integers(1, K + 1))
            cols = rng.choice(len(COLOR_NAMES), size=k + 1, replace=False)
            out["background"][b] = cols[0]
            for j in range(k):
                r = rng.uniform(0.12, 0.26)
                out["r"][b, j] = r
                out["cx"][b, j], out["cy"][b, j] = rng.uniform(r, 1 - r, size=2)
                out["angle"][b, j] = rng.uniform(0, 2 * math.pi)
                out["shape"][b, j] = rng.integers(0, len(SHAPES))
                out["color"][b, j] = cols[j + 1]
            out["jitter"][b] = rng.normal(size=(4, 3))          # 4 waves: (amplitude, freq x, freq y) seeds
        return {k: torch.as_tensor(v, dtype=torch.long if v.dtype == np.int64 else torch.float32)
                for k, v in out.items()}

    def batch(self, indices) -> dict:
        """image (B,3,s,s) [-1,1]; cond (B,3,s*f,s*f) [0,1]; visible (B,K,s,s) bool: each shape's exact visible
        mask; segmentation (B,1,s,s) class (0 = background); depth (B,1,s,s) drawing rank + 1 (0 = none);
        shape, color (B,K) (-1 = absent); background (B,); prompt."""
        p = self.params(indices)
        sd = signed_distance(p, self.size)                                    # (B,K,s,s)
        image = paint(p, sd, self.size)
        visible = visible_masks(sd <= 0)
        rank = torch.arange(1, self.max_shapes + 1, dtype=torch.long)[None, :, None, None]
        seg = (visible.long() * (p["shape"] + 1)[:, :, None, None]).sum(1, keepdim=True)
        depth = (visible.long() * rank).sum(1, keepdim=True)
        prompts = [scene_prompt([s for s in sh if s >= 0], [c for c in co if c >= 0], bg)
                   for sh, co, bg in zip(p["shape"].tolist(), p["color"].tolist(), p["background"].tolist())]
        return {"image": image, "cond": self.render_condition(p), "visible": visible, "segmentation": seg,
                "depth": depth, "mask": visible.any(1, keepdim=True), "prompt": prompts,
                "shape": p["shape"], "color": p["color"], "background": p["background"]}

    def render_condition(self, p: dict) -> torch.Tensor:
        s_c = self.size * self.cond_factor
        sd = signed_distance(p, s_c)
        if self.condition == "canny":
            return canny(paint(p, sd, s_c))
        if self.condition in ("segmentation", "depth"):
            vis = visible_masks(sd <= 0).float()
            if self.condition == "segmentation":
                cls = CLASS_COLORS[(p["shape"] + 1).clamp(min=0)]                  # (B,K,3)
                return torch.einsum("bkhw,bkc->bchw", vis, cls)
            rank = torch.arange(1, self.max_shapes + 1, dtype=torch.float32)[None, :, None, None]
            return (vis * rank / self.max_shapes).sum(1, keepdim=True).expand(-1, 3, -1, -1).contiguous()
        width = 1.5 * self.cond_factor / s_c
        if self.condition == "scribble":
            sd = sd + 0.02 * wobble(p, s_c)
            width *= 2
        return outline(sd, width, s_c)

    def __len__(self):
        if self.n is None:
            raise TypeError("an unbounded Scenes set (n=None) has no length")
        return self.n


def _grid(size: int):
    xs = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    return xs[None, None, None, :], xs[None, None, :, None]                 # x (1,1,1,s), y (1,1,s,1)


def signed_distance(p: dict, size: int) -> torch.Tensor:
    """(B,K,s,s): distance to each shape's boundary in unit coordinates, negative inside; +inf if absent.
    Squares and triangles are regular polygons with circumradius r: the max over their edges of the signed
    distance to the edge's line (exact inside, exact enough outside for one pixel of anti-aliasing)."""
    x, y = _grid(size)
    cx, cy, r, ang = (p[k][:, :, None, None] for k in ("cx", "cy", "r", "angle"))
    dx, dy = x - cx, y - cy
    circle = torch.sqrt(dx ** 2 + dy ** 2) - r
    polys = []
    for n_sides in (4, 3):
        apothem = r * math.cos(math.pi / n_sides)
        d = torch.stack([dx * torch.cos(ang + 2 * math.pi * k / n_sides) + dy * torch.sin(ang + 2 * math.pi * k / n_sides)
                         for k in range(n_sides)]).amax(0) - apothem
        polys.append(d)
    shape = p["shape"][:, :, None, None]
    sd = torch.where(shape == 0, circle, torch.where(shape == 1, polys[0], polys[1]))
    return torch.where(shape >= 0, sd, torch.full_like(sd, math.inf))


def in_any_later(mask: torch.Tensor) -> torch.Tensor:
    """(B,K,s,s) bool: True where mask holds for some later (nearer) slot j > k."""
    suffix = torch.flip(torch.cummax(torch.flip(mask.int(), [1]), 1).values, [1])      # any j >= k
    return torch.cat([suffix[:, 1:], torch.zeros_like(suffix[:, :1])], 1).bool()


def visible_masks(inside: torch.Tensor) -> torch.Tensor:
    """(B,K,s,s) bool: inside shape k and inside no later (nearer) shape."""
    return inside & ~in_any_later(inside)


def paint(p: dict, sd: torch.Tensor, size: int) -> torch.Tensor:
    """Painter's algorithm with one pixel of anti-aliasing: (B,3,s,s) in [-1, 1]."""
    image = COLORS[p["background"]][:, :, None, None].expand(-1, -1, size, size).clone()
    for k in range(sd.shape[1]):
        alpha = (0.5 - sd[:, k:k + 1] * size).clamp(0, 1)
        col = COLORS[p["color"][:, k].clamp(min=0)][:, :, None, None]
        image = alpha * col + (1 - alpha) * image
    return image


def outline(sd: torch.Tensor, width: float, size: int) -> torch.Tensor:
    """Visible edges: |sd_k| within width/2 of shape k's boundary, not inside a later shape. (B,3,s,s)."""
    line = (1 - ((sd.abs() - width / 2) * size)).clamp(0, 1)                # (B,K,s,s), anti-aliased
    hidden = in_any_later(sd < -width / 2)
    edge = torch.where(hidden, torch.zeros_like(line), line).amax(1, keepdim=True)
    return edge.expand(-1, 3, -1, -1).contiguous()


def wobble(p: dict, size: int) -> torch.Tensor:
    """A smooth per-sample random field in [-1, 1]-ish, (B,1,s,s): four plane waves from p["jitter"]."""
    x, y = _grid(size)
    j = p["jitter"][:, :, :, None, None]                                     # (B,4,3,1,1)
    waves = torch.sin(2 * math.pi * (2 + j[:, :, 1].abs()) * x + 2 * math.pi * (2 + j[:, :, 2].abs()) * y + j[:, :, 0])
    return waves.mean(1, keepdim=True)


def canny(images: torch.Tensor, low: int = 100, high: int = 200) -> torch.Tensor:
    """OpenCV Canny per image (the official annotator's thresholds), (B,3,s,s) in {0, 1}."""
    import cv2           # deferred: only the scenes need OpenCV (python -m cnref checks it at start)
    u8 = to_uint8(images).permute(0, 2, 3, 1).numpy()
    edges = np.stack([cv2.Canny(np.ascontiguousarray(im), low, high) for im in u8])
    return torch.from_numpy(edges > 0).float()[:, None].expand(-1, 3, -1, -1).contiguous()
