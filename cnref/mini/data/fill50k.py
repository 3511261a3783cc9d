"""Procedural Fill50K: the official tutorial's toy set, as a pure function of (seed, index).

Each sample is a disc of one colour on a background of another (the target image x_0), the disc's
outline in white on black (the condition c_i), the prompt "<fill> circle with <background> background"
(c_t), and the exact disc mask (for metrics). Rendering is batched in torch so it never starves training.
Images are in [-1, 1] (the diffusion target), conditions in [0, 1] (as in the official code).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ...checks import check_choice, check_positive, check_power_of_two, fail

# CSS colour names (as the official fill50k prompts use), chosen to be far apart in RGB so that
# prompt fidelity can be read off the nearest palette colour.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0), "orange": (255, 165, 0), "yellow": (255, 255, 0), "lime": (0, 255, 0),
    "dark green": (0, 100, 0), "cyan": (0, 255, 255), "sky blue": (135, 206, 235), "navy": (0, 0, 128),
    "purple": (128, 0, 128), "magenta": (255, 0, 255), "pink": (255, 192, 203), "brown": (165, 42, 42),
    "white": (255, 255, 255), "gray": (128, 128, 128), "black": (0, 0, 0),
}
COLOR_NAMES = tuple(PALETTE)
COLORS = torch.tensor([PALETTE[n] for n in COLOR_NAMES], dtype=torch.float32) / 127.5 - 1.0  # in [-1, 1]

# Seeds of the splits: a training set and a held-out validation set never share a (seed, index).
TRAIN_SEED = 0
VAL_SEED = 1_000_003


def prompt_for(fill: int, background: int) -> str:
    return f"{COLOR_NAMES[fill]} circle with {COLOR_NAMES[background]} background"


def vocabulary() -> list[str]:
    """Every word a Fill50K prompt (or a prompt-setting ablation's prompt) can contain."""
    words = {w for name in COLOR_NAMES for w in name.split()} | {"circle", "with", "background"}
    return sorted(words)


def sample_indices(indices, n: int | None) -> np.ndarray:
    """The samples that dataset indices name: index i is sample i % n of a finite set of n, or sample i of
    an unbounded one (n None)."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 1 or (idx < 0).any():
        fail("indices", "a 1-d sequence of non-negative integers", f"{idx!r}")
    return idx if n is None else idx % n


@dataclass(frozen=True)
class Fill50K:
    """A (possibly infinite) procedural Fill50K set; `n=None` draws fresh samples for every index."""
    size: int = 32            # target resolution (pixel space stands in for SD's latent space)
    cond_factor: int = 1      # condition resolution = size * cond_factor (SD: 512 / 64 = 8)
    seed: int = TRAIN_SEED
    n: int | None = None      # number of distinct samples; index i maps to i % n

    def __post_init__(self):
        check_positive("size", self.size, integer=True)
        check_power_of_two("cond_factor", self.cond_factor)
        if self.n is not None:
            check_positive("n", self.n, integer=True)

    def params(self, indices) -> dict[str, torch.Tensor]:
        """Circle parameters in unit coordinates, one numpy SeedSequence per (seed, index)."""
        idx = sample_indices(indices, self.n)
        rows = []
        for i in idx.tolist():
            rng = np.random.default_rng([self.seed, i])
            r = rng.uniform(0.12, 0.32)
            cx, cy = rng.uniform(r + 0.04, 1 - r - 0.04, size=2)
            fill, bg = rng.choice(len(COLOR_NAMES), size=2, replace=False)
            rows.append((cx, cy, r, fill, bg))
        a = np.array(rows, dtype=np.float64).reshape(-1, 5)
        return {"cx": torch.tensor(a[:, 0], dtype=torch.float32), "cy": torch.tensor(a[:, 1], dtype=torch.float32),
                "r": torch.tensor(a[:, 2], dtype=torch.float32),
                "fill": torch.tensor(a[:, 3], dtype=torch.long), "background": torch.tensor(a[:, 4], dtype=torch.long)}

    def batch(self, indices) -> dict:
        """Render samples: image (B,3,s,s) in [-1,1], cond (B,3,s*f,s*f) in [0,1], mask (B,1,s,s), prompt."""
        p = self.params(indices)
        d = _distance(p["cx"], p["cy"], self.size)                    # |pixel - centre|, unit coords
        alpha = _edge_ramp(p["r"], d, self.size)[:, None]             # anti-aliased disc
        fill, bg = COLORS[p["fill"]][:, :, None, None], COLORS[p["background"]][:, :, None, None]
        image = alpha * fill + (1 - alpha) * bg
        s_c = self.size * self.cond_factor
        width = 1.5 * self.cond_factor / s_c                          # outline width, unit coords
        d_c = _distance(p["cx"], p["cy"], s_c)
        outline = (1 - ((d_c - p["r"][:, None, None]).abs() - width / 2) * s_c).clamp(0, 1)
        cond = outline[:, None].expand(-1, 3, -1, -1).contiguous()
        mask = (d <= p["r"][:, None, None])[:, None]
        prompts = [prompt_for(f, b) for f, b in zip(p["fill"].tolist(), p["background"].tolist())]
        return {"image": image, "cond": cond, "mask": mask, "prompt": prompts,
                "fill": p["fill"], "background": p["background"]}

    def __len__(self):
        if self.n is None:
            raise TypeError("an unbounded Fill50K (n=None) has no length")
        return self.n


def disc_alpha(cx: torch.Tensor, cy: torch.Tensor, r: torch.Tensor, size: int) -> torch.Tensor:
    """Anti-aliased disc masks (K, size, size) in [0, 1], as `Fill50K.batch` draws them."""
    return _edge_ramp(r, _distance(cx, cy, size), size)


def _edge_ramp(r: torch.Tensor, d: torch.Tensor, size: int) -> torch.Tensor:
    """Disc coverage from distances to the centre: one pixel of linear ramp across the edge."""
    return ((r[:, None, None] - d) * size + 0.5).clamp(0, 1)


def _distance(cx: torch.Tensor, cy: torch.Tensor, size: int) -> torch.Tensor:
    xs = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    return torch.sqrt((xs[None, None, :] - cx[:, None, None]) ** 2 + (xs[None, :, None] - cy[:, None, None]) ** 2)


def batch_at(data: Fill50K, step: int, batch_size: int, shuffle_seed: int = 0) -> dict:
    """Training batch number `step`: a pure function of the step, so training resumes exactly.

    An unbounded set draws indices step*B ... step*B+B-1; a finite set (n) is visited in a fresh
    permutation per epoch. Rendering in the main process (no workers) keeps the 2 cores for the model.
    """
    check_positive("batch_size", batch_size, integer=True)
    idx = np.arange(step * batch_size, (step + 1) * batch_size)
    if data.n is not None:
        epoch, pos = np.divmod(idx, data.n)
        idx = np.array([_perm(data.n, shuffle_seed, e)[q] for e, q in zip(epoch, pos)])
    return data.batch(idx)


_PERMS: dict = {}


def _perm(n: int, seed: int, epoch: int) -> np.ndarray:
    key = (n, seed, int(epoch))
    if key not in _PERMS:
        if len(_PERMS) > 4:
            _PERMS.clear()
        _PERMS[key] = np.random.default_rng([seed, int(epoch), n]).permutation(n)
    return _PERMS[key]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (the data's range, and what sampling returns) as uint8 in [0, 255], the form results keep
    them in and OpenCV reads."""
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def to_pil(images: torch.Tensor):
    """(B,3,H,W) images in [-1, 1] -> list of PIL images (pass a condition in [0, 1] as 2 c - 1). The range is
    stated, not guessed: a pink disc on white lies wholly in [0, 1] too."""
    return [Image.fromarray(a) for a in to_uint8(images.detach().float()).permute(0, 2, 3, 1).cpu().numpy()]


def grid(images: torch.Tensor, nrow: int = 8, pad: int = 1) -> torch.Tensor:
    """Tile (B,3,H,W) images into one (3, H', W') image for plotting."""
    b, c, h, w = images.shape
    ncol = min(nrow, b)
    nrows = math.ceil(b / ncol)
    out = torch.ones(c, nrows * (h + pad) + pad, ncol * (w + pad) + pad) * images.max().clamp(min=1)
    for k in range(b):
        r, q = divmod(k, ncol)
        out[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = images[k]
    return out


PROMPT_SETTINGS = {"perfect", "none", "insufficient", "conflicting"}
SCENE_SETTINGS = {"perfect", "none"}      # scenes: with and without a prompt


def conflicting_colors(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Other colours than the scene's: each shifted 5 places through the palette (never fill == background)."""
    n = len(COLOR_NAMES)
    fill = (batch["fill"] + 5) % n
    bg = (batch["background"] + 5) % n
    return fill, torch.where(bg == fill, (bg + 1) % n, bg)


def with_setting(batch: dict, setting: str) -> dict:
    """The batch with the prompts of one of the paper's four settings (Fig. 8): none, insufficient
    ("circle"), conflicting (other colours than the target's), perfect. `fill` / `background` are the
    colours the prompt asks for (conflicting: the prompt's, not the scene's)."""
    check_choice("setting", setting, PROMPT_SETTINGS)
    if setting not in SCENE_SETTINGS and "fill" not in batch:
        fail("setting", f"one of {sorted(SCENE_SETTINGS)} for a Scenes batch (its prompts name several shapes)",
             repr(setting))
    out = dict(batch)
    k = len(batch["prompt"])
    if setting == "none":
        out["prompt"] = [""] * k
    elif setting == "insufficient":
        out["prompt"] = ["circle"] * k
    elif setting == "conflicting":
        out["fill"], out["background"] = conflicting_colors(batch)
        out["prompt"] = [prompt_for(f, b) for f, b in zip(out["fill"].tolist(), out["background"].tolist())]
    return out


def prompts_for_setting(batch: dict, setting: str) -> list[str]:
    return with_setting(batch, setting)["prompt"]
