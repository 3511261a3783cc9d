"""How much of the condition z_t already shows: where a ControlNet's training signal can come from.

Eq. 3 rewards the ControlNet only where knowing the condition c_f lowers the best achievable eps error,
i.e. where the disc is not already readable from z_t itself. This measures that without any model: the
maximum-likelihood disc given z_t and the prompt's two colours (the perfect prompt, so an upper bound on
what the locked base could read), over a grid of centres and radii, scored by IoU with the true disc.

With known fill f and background b, z_t = sqrt(alpha_bar_t) (b + alpha (f - b)) + sqrt(1 - alpha_bar_t) eps
(+ offset noise, a constant per channel), so the projection

    y = <(f - b) / |f - b|, z_t - sqrt(alpha_bar_t) b>  =  s alpha + sqrt(1 - alpha_bar_t) n,  s = sqrt(alpha_bar_t) |f - b|

carries all the information about the disc's mask alpha (n ~ N(0, 1) per pixel). Centring y and each
template removes the offset's constant, and the log-likelihood of template a is 2 s <a, y> - s^2 |a|^2.
IoU near 1: z_t shows the disc, a ControlNet can add nothing at this t. IoU near chance (a random disc,
about 0.15): the condition decides where the disc goes.

    python -m cnref visibility --presets cpu gpu     -> experiments/visibility/visibility.json
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from ..mini.base import train_scheduler
from ..mini.presets import BaseConfig
from ..checks import check_choice, check_positive, fail
from ..mini.data import COLORS, VAL_SEED, Fill50K, disc_alpha
from ..paper.loss import add_noise, sample_noise
from ..mini.metrics import iou

CHUNK = 4096          # templates per matmul: bounds memory at 64x64 (4096 x 4096 floats)


def disc_grid(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every centre on the pixel grid and radius in steps of 0.01 that Fill50K can draw (cx, cy, r)."""
    cs = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    cs = cs[(cs >= 0.16 - 0.5 / size) & (cs <= 0.84 + 0.5 / size)]
    rs = torch.arange(0.12, 0.32 + 1e-6, 0.01)
    cx, cy, r = torch.meshgrid(cs, cs, rs, indexing="ij")
    return cx.flatten(), cy.flatten(), r.flatten()


def ml_disc(z_t: torch.Tensor, alpha_bar_t, fill: torch.Tensor, background: torch.Tensor,
            grid=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The maximum-likelihood disc (cx, cy, r per image) given z_t (B, 3, s, s), its alpha_bar_t (a number
    or one per image) and the two colours (B, 3). One pass over the templates serves the whole batch."""
    if z_t.ndim != 4 or z_t.shape[1] != 3:
        fail("z_t", "a (B, 3, s, s) tensor", f"shape {tuple(z_t.shape)}")
    a = torch.as_tensor(alpha_bar_t, dtype=torch.float32).expand(len(z_t))
    if not bool(((a > 0) & (a <= 1)).all()):
        fail("alpha_bar_t", "numbers in (0, 1]", alpha_bar_t)
    size = z_t.shape[-1]
    cx, cy, r = grid if grid is not None else disc_grid(size)
    delta = fill - background
    norm = delta.norm(dim=1)
    sqrt_a = a.sqrt()[:, None, None, None]
    y = ((z_t - sqrt_a * background[:, :, None, None]) * (delta / norm[:, None])[:, :, None, None]).sum(1)
    y = y.flatten(1)
    y = y - y.mean(1, keepdim=True)
    s = a.sqrt() * norm                                            # signal amplitude per image
    best = torch.full((len(y),), -torch.inf)
    arg = torch.zeros(len(y), dtype=torch.long)
    for k0 in tqdm(range(0, len(cx), CHUNK), desc=f"ML disc fit {size}x{size}", leave=False):
        A = disc_alpha(cx[k0:k0 + CHUNK], cy[k0:k0 + CHUNK], r[k0:k0 + CHUNK], size).flatten(1)
        A = A - A.mean(1, keepdim=True)
        score = 2 * s[None] * (A @ y.T) - s[None] ** 2 * (A * A).sum(1)[:, None]   # log-likelihood, (K, B)
        m, i = score.max(0)
        better = m > best
        best, arg = torch.where(better, m, best), torch.where(better, i + k0, arg)
    return cx[arg], cy[arg], r[arg]


@torch.no_grad()
def visibility(cfg: BaseConfig, timesteps, n: int = 64, seed: int = 0) -> dict:
    """IoU of the ML disc from z_t with the true disc, per timestep (held-out discs, the base's schedule and
    offset noise), and the chance level (the true disc against another image's)."""
    check_positive("n", n, integer=True)
    if n < 2:
        fail("n", "at least 2 (chance pairs each disc with another image's)", n)
    T = cfg.num_train_timesteps
    bad = [t for t in timesteps if not 0 <= int(t) < T]
    if bad:
        fail("timesteps", f"integers in [0, {T - 1}]", bad)
    data = Fill50K(size=cfg.size, seed=VAL_SEED)
    b, p = data.batch(range(n)), data.params(range(n))
    true = disc_alpha(p["cx"], p["cy"], p["r"], cfg.size) > 0.5
    fill, bg = COLORS[b["fill"]], COLORS[b["background"]]
    alpha_bar = train_scheduler(cfg).alphas_cumprod
    grid = disc_grid(cfg.size)
    g = torch.Generator().manual_seed(seed)
    ts = torch.tensor([int(t) for t in timesteps]).repeat_interleave(n)     # every held-out disc at every t
    k = len(timesteps)
    x_0 = b["image"].repeat(k, 1, 1, 1)
    z_t = add_noise(x_0, sample_noise(x_0, cfg.offset_noise, generator=g), ts, alpha_bar)   # as in training
    est = disc_alpha(*ml_disc(z_t, alpha_bar[ts], fill.repeat(k, 1), bg.repeat(k, 1), grid), cfg.size) > 0.5
    ious = iou(est, true.repeat(k, 1, 1)).view(k, n)
    rows = [{"t": int(t), "alpha_bar": round(float(alpha_bar[int(t)]), 6), "iou": round(ious[j].mean().item(), 4),
             "iou_std": round(ious[j].std().item(), 4)} for j, t in enumerate(timesteps)]
    chance = iou(true, true.roll(1, dims=0)).mean().item()
    return {"size": cfg.size, "n": n, "seed": seed, "offset_noise": cfg.offset_noise,
            "chance_iou": round(chance, 4), "rows": rows}


def timestep_density(kind: str, T: int):
    """P(t) for t = 0..T-1 under `cnref.paper.loss.sample_timesteps`: uniform 1/T, or high_t's
    t = T-1-floor(T u^2), which gives P(t) = sqrt((T-t)/T) - sqrt((T-1-t)/T)."""
    check_choice("kind", kind, {"uniform", "high_t"})
    t = np.arange(T)
    if kind == "uniform":
        return np.full(T, 1.0 / T)
    return np.sqrt((T - t) / T) - np.sqrt((T - 1 - t) / T)


def open_share(result: dict, kind: str = "uniform", T: int = 1000) -> float:
    """The share of training examples (t drawn as `kind` draws it) where z_t leaves the disc open:
    E_t[(IoU_0 - IoU_t) / (IoU_0 - chance)], clipped to [0, 1], IoU_t interpolated between measured t."""
    ts = np.array([row["t"] for row in result["rows"]])
    ious = np.array([row["iou"] for row in result["rows"]])
    if ts[0] != 0:
        fail("result rows", "a first row at t = 0 (the fit's own ceiling)", int(ts[0]))
    iou_t = np.interp(np.arange(T), ts, ious)
    openness = np.clip((ious[0] - iou_t) / (ious[0] - result["chance_iou"]), 0.0, 1.0)
    return float((timestep_density(kind, T) * openness).sum())


TIMESTEPS = (0, 100, 200, 300, 400, 500, 600, 700, 750, 800, 850, 900, 925, 950, 975, 999)
