"""How visible the disc is in z_t: the ML fit against brute-force likelihoods, the timestep densities
against sampling, and the share of training examples the condition decides."""
import math

import numpy as np
import pytest
import torch

from cnref.mini.base import train_scheduler
from cnref.mini.presets import preset
from cnref.mini.data import COLORS, Fill50K, disc_alpha
from cnref.paper.loss import add_noise, sample_noise, sample_timesteps
from cnref.mini.metrics import iou
from cnref.measure.visibility import (disc_grid, ml_disc, open_share, timestep_density,
                              visibility)


def _noisy_batch(size, n, t, seed=0):
    data = Fill50K(size=size, seed=5)
    b = data.batch(range(n))
    alpha_bar = train_scheduler(preset("cpu").base).alphas_cumprod
    g = torch.Generator().manual_seed(seed)
    ts = torch.full((n,), t)
    z_t = add_noise(b["image"], sample_noise(b["image"], 0.1, generator=g), ts, alpha_bar)
    return data, b, z_t, float(alpha_bar[t])


def test_ml_disc_is_the_brute_force_gaussian_likelihood_with_fitted_channel_offsets():
    """Independent reference: the 3-channel Gaussian log-likelihood of every template, with the constant per
    channel (offset noise) fitted by least squares, maximised by brute force."""
    size, n = 16, 6
    data, b, z_t, a = _noisy_batch(size, n, t=900)
    fill, bg = COLORS[b["fill"]], COLORS[b["background"]]
    grid = disc_grid(size)
    cx, cy, r = ml_disc(z_t, a, fill, bg, grid)
    A = disc_alpha(*grid, size)                                              # (K, s, s)
    for i in range(n):
        mu = math.sqrt(a) * (bg[i][None, :, None, None] + A[:, None] * (fill[i] - bg[i])[None, :, None, None])
        res = z_t[i][None] - mu
        res = res - res.mean(dim=(2, 3), keepdim=True)                       # least-squares channel offsets
        k = int((-(res ** 2).sum(dim=(1, 2, 3))).argmax())
        assert (cx[i], cy[i], r[i]) == (grid[0][k], grid[1][k], grid[2][k])


def test_ml_disc_finds_the_disc_in_a_clean_image():
    data, b, _, _ = _noisy_batch(32, 16, t=0)
    p = data.params(range(16))
    fill, bg = COLORS[b["fill"]], COLORS[b["background"]]
    est = disc_alpha(*ml_disc(b["image"], 1.0, fill, bg), 32) > 0.5
    true = disc_alpha(p["cx"], p["cy"], p["r"], 32) > 0.5
    assert iou(est, true).min() >= 0.85          # grid-limited: centres on pixels, radii in 0.01 steps


@pytest.mark.parametrize("kind", ["uniform", "high_t"])
def test_timestep_density_matches_sample_timesteps(kind):
    T, n = 1000, 200_000
    t = sample_timesteps(n, T, kind, generator=torch.Generator().manual_seed(0)).numpy()
    p = timestep_density(kind, T)
    assert abs(p.sum() - 1) < 1e-12
    for lo in range(0, T, 100):                        # 10 bins, each within 4 binomial sigmas
        q = p[lo:lo + 100].sum()
        assert abs(((t >= lo) & (t < lo + 100)).mean() - q) <= 4 * math.sqrt(q * (1 - q) / n)


def test_open_share_is_zero_when_z_t_always_shows_the_disc_and_counts_the_open_timesteps():
    flat = {"chance_iou": 0.2, "rows": [{"t": 0, "iou": 0.9}, {"t": 999, "iou": 0.9}]}
    assert open_share(flat) == 0.0
    # IoU at chance from t = 500 on: half of the uniform timesteps are open, three quarters of high_t's
    step = {"chance_iou": 0.2, "rows": [{"t": 0, "iou": 0.9}, {"t": 499, "iou": 0.9}, {"t": 500, "iou": 0.2},
                                        {"t": 999, "iou": 0.2}]}
    assert open_share(step) == pytest.approx(0.5)
    assert open_share(step, "high_t") == pytest.approx(np.sqrt(0.5), abs=1e-9)   # P(u^2 < 0.5)


def test_visibility_falls_with_noise_and_names_bad_input():
    r = visibility(preset("smoke").base, (0, 999), n=16)
    first, last = r["rows"]
    assert first["iou"] > 0.8 and last["iou"] < first["iou"] - 0.3
    with pytest.raises(ValueError, match="timesteps"):
        visibility(preset("smoke").base, (0, 1000), n=4)
    with pytest.raises(ValueError, match="z_t"):
        ml_disc(torch.zeros(2, 1, 8, 8), 0.5, torch.zeros(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="alpha_bar_t"):
        ml_disc(torch.zeros(2, 3, 8, 8), 0.0, torch.zeros(2, 3), torch.ones(2, 3))
