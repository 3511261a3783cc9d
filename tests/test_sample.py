"""DDIM sampling against its formula (Song et al. 2021, Eq. 12), written out here step by step, for eta = 0 and
eta > 0: the scheduler cnref samples with computes exactly the update the module docstring states."""
import pytest
import torch

from cnref.mini.base import sample_scheduler
from cnref.mini.presets import preset
from cnref.mini.sample import sample_ddim


def eps_fn(z, t):
    """Any smooth function of z_t and t stands in for the noise predictor."""
    return torch.tanh(0.5 * z) + float(t) / 1000


def ddim_by_hand(z, steps: int, eta: float, generator: torch.Generator, cfg) -> torch.Tensor:
    """x_{t-1} = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma noise, x0 = (x_t - sqrt(1 - ab_t) eps)
    / sqrt(ab_t), sigma = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev); SD's spacing: t = T/steps
    k + 1 (steps_offset 1), and at the last step ab_prev = alpha_bar_0 (set_alpha_to_one False)."""
    betas = torch.linspace(cfg.beta_start ** 0.5, cfg.beta_end ** 0.5, cfg.num_train_timesteps, dtype=torch.float64) ** 2
    ab = torch.cumprod(1 - betas, 0)
    jump = cfg.num_train_timesteps // steps
    for t in [jump * k + 1 for k in reversed(range(steps))]:
        ab_t, ab_prev = ab[t], ab[t - jump] if t - jump >= 0 else ab[0]
        eps = eps_fn(z, t).double()
        x0 = (z.double() - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
        sigma = eta * ((1 - ab_prev) / (1 - ab_t)).sqrt() * (1 - ab_t / ab_prev).sqrt()
        z = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma ** 2).sqrt() * eps
        if eta > 0:
            z = z + sigma * torch.randn(z.shape, generator=generator, dtype=torch.float32).double()
        z = z.float()
    return z


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_is_its_formula_at_every_eta(eta):
    cfg = preset("smoke").base
    z_T = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    got = sample_ddim(eps_fn, z_T, sample_scheduler(cfg), steps=10, eta=eta, generator=torch.Generator().manual_seed(7))
    want = ddim_by_hand(z_T, 10, eta, torch.Generator().manual_seed(7), cfg)
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    if eta > 0:             # the noise term is there: a different generator seed gives another sample
        other = sample_ddim(eps_fn, z_T, sample_scheduler(cfg), steps=10, eta=eta,
                            generator=torch.Generator().manual_seed(8))
        assert (other - got).abs().max() > 1e-3
