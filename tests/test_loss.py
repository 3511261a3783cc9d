"""Eq. 3 pieces: prompt dropout rate, forward process, loss."""
import math

import pytest
import torch
from torch.nn import functional as F

from cnref.mini.base import train_scheduler
from cnref.mini.presets import preset
from cnref.paper.loss import add_noise, drop_prompts, eps_loss, sample_noise, sample_timesteps


@pytest.mark.parametrize("p", [0.5, 0.1, 0.0, 1.0])
def test_prompt_dropout_rate_within_binomial_tolerance(p):
    n = 20_000
    out = drop_prompts(["a prompt"] * n, p, torch.Generator().manual_seed(0))
    rate = sum(o == "" for o in out) / n
    assert abs(rate - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-12
    assert set(out) <= {"", "a prompt"}


def test_prompt_dropout_reproducible_and_default_half():
    prompts = [f"p{i}" for i in range(100)]
    a = drop_prompts(prompts, generator=torch.Generator().manual_seed(3))
    b = drop_prompts(prompts, generator=torch.Generator().manual_seed(3))
    assert a == b and 25 < sum(x == "" for x in a) < 75


def test_forward_process_matches_diffusers_scheduler():
    sched = train_scheduler(preset("cpu").base)
    z_0, eps = torch.randn(8, 3, 4, 4), torch.randn(8, 3, 4, 4)
    t = torch.tensor([0, 1, 10, 100, 500, 900, 998, 999])
    torch.testing.assert_close(add_noise(z_0, eps, t, sched.alphas_cumprod), sched.add_noise(z_0, eps, t))


def test_sd_schedule_constants():
    ab = train_scheduler(preset("cpu").base).alphas_cumprod
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2   # scaled-linear
    torch.testing.assert_close(ab.double(), torch.cumprod(1 - betas, 0), rtol=1e-5, atol=1e-7)
    assert abs(ab[-1].sqrt().item() - 0.068) < 0.001     # the leak at t = T (Lin et al. 2023)


def test_eps_loss_is_mse():
    a, b = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(eps_loss(a, b), F.mse_loss(a, b))
    with pytest.raises(ValueError, match="eps_pred"):
        eps_loss(a, b[:, :2])


def test_offset_noise_adds_a_per_channel_constant():
    z = torch.zeros(4000, 3, 8, 8)
    plain = sample_noise(z, 0.0, torch.Generator().manual_seed(0))
    off = sample_noise(z, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(plain, sample_noise(z, 0.0, torch.Generator().manual_seed(0)))
    # the per-image channel mean has variance 1/64 + offset^2
    assert abs(off.mean(dim=(2, 3)).var().item() - (1 / 64 + 0.25)) < 0.02
    assert abs(plain.mean(dim=(2, 3)).var().item() - 1 / 64) < 0.002


def test_timestep_sampling():
    g = torch.Generator().manual_seed(0)
    u = sample_timesteps(50_000, 1000, "uniform", g)
    h = sample_timesteps(50_000, 1000, "high_t", g)
    assert u.min() >= 0 and u.max() <= 999 and abs(u.float().mean().item() - 499.5) < 5
    assert h.min() >= 0 and h.max() <= 999 and h.float().mean().item() > 640   # E = T - T/3


def test_cubic_schedule_has_t2i_adapters_distribution():
    """t = floor((1 - u^3) T): P(t >= x) = (1 - x/T)^(1/3). Empirical tail shares within 4 binomial sd."""
    g = torch.Generator().manual_seed(1)
    n, T = 100_000, 1000
    t = sample_timesteps(n, T, "cubic", g)
    assert t.min() >= 0 and t.max() <= T - 1
    for x in (100, 500, 900, 990):
        p = (1 - x / T) ** (1 / 3)
        assert abs((t >= x).float().mean().item() - p) < 4 * (p * (1 - p) / n) ** 0.5, x


def test_curriculum_starts_at_large_t_and_ends_uniform():
    from cnref.paper.loss import curriculum_floor
    T = 1000
    assert curriculum_floor(0, T) == 800 and curriculum_floor(125, T) == 400 and curriculum_floor(250, T) == 0
    assert curriculum_floor(400, T) == 0
    g = torch.Generator().manual_seed(2)
    early = sample_timesteps(10_000, T, "curriculum", g, floor=curriculum_floor(0, T))
    assert early.min() >= 800 and early.max() <= 999
    # with the floor at 0 it is the paper's uniform sampling, draw for draw
    a = sample_timesteps(64, T, "curriculum", torch.Generator().manual_seed(3), floor=0)
    b = sample_timesteps(64, T, "uniform", torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # and so without a floor given: the default floor is 0
    assert torch.equal(sample_timesteps(64, T, "curriculum", torch.Generator().manual_seed(3)), b)


@pytest.mark.parametrize("kind", ["high_t", "cubic"])
def test_biased_timesteps_are_their_formulas_draw_for_draw(kind):
    """The same u ~ U[0, 1) through the docstring's formula: high_t = T-1-floor(T u^2), cubic = floor((1 - u^3) T),
    and every t a valid index (the extremes of u included)."""
    T, n = 1000, 4096
    t = sample_timesteps(n, T, kind, torch.Generator().manual_seed(5))
    u = torch.rand(n, generator=torch.Generator().manual_seed(5))
    want = T - 1 - torch.floor(T * u ** 2) if kind == "high_t" else torch.floor((1 - u ** 3) * T)
    assert torch.equal(t, want.clamp(0, T - 1).long()) and t.dtype == torch.long     # u^3 < 1e-3/T rounds to T
    assert sample_timesteps(3, T, kind, torch.Generator().manual_seed(0), device="cpu").device.type == "cpu"


@pytest.mark.parametrize("kind, floor", [(None, 0), ("curriculum", 0), ("curriculum", 600)])
def test_eq3_loss_is_its_four_draws_in_order_then_the_mse(kind, floor):
    """Eq. 3 written out by hand with a generator of the same seed: the prompts dropped, eps (with its offset), t
    (uniform by default; the curriculum's floor 0 unless given), z_t by the forward process, then the MSE
    against what eps_theta returns, which sees exactly that z_t, t and c_t."""
    from cnref.paper.loss import eq3_loss
    alpha_bar = torch.linspace(0.999, 0.01, 1000)
    z_0 = torch.randn(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    prompts = [f"a disc {k}" for k in range(6)]
    encode = lambda ps: torch.tensor([[float(len(p))] for p in ps])
    seen = {}

    def eps_theta(z_t, t, c_t):
        seen.update(z_t=z_t, t=t, c_t=c_t)
        return 0.5 * z_t + c_t.view(-1, 1, 1, 1) / 10

    opts = {} if kind is None else {"timesteps": kind, **({"t_floor": floor} if floor else {})}
    got = eq3_loss(eps_theta, encode, z_0, prompts, alpha_bar, prompt_dropout=0.5, offset_noise=0.3,
                   generator=torch.Generator().manual_seed(7), **opts)
    g = torch.Generator().manual_seed(7)
    kept = (torch.rand(6, generator=g) >= 0.5).tolist()
    c_t = encode([p if k else "" for p, k in zip(prompts, kept)])
    eps = torch.randn(z_0.shape, generator=g) + 0.3 * torch.randn(6, 3, 1, 1, generator=g)
    t = torch.randint(floor, 1000, (6,), generator=g)                  # the curriculum's floor, when given
    a = alpha_bar[t].view(-1, 1, 1, 1)
    z_t = a.sqrt() * z_0 + (1 - a).sqrt() * eps
    assert 0 < sum(kept) < 6 and torch.equal(seen["t"], t) and torch.equal(seen["c_t"], c_t)
    torch.testing.assert_close(seen["z_t"], z_t)
    torch.testing.assert_close(got, ((eps - (0.5 * z_t + c_t.view(-1, 1, 1, 1) / 10)) ** 2).mean())


def test_noise_is_drawn_in_the_latents_dtype_draw_for_draw_and_refusals_name_their_argument():
    """eps ~ N(0, I) in z_0's dtype, then the offset's per-channel constant, both from the given generator in that
    order; bad inputs are refused by name."""
    z_0 = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    eps = sample_noise(z_0, 0.3, torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    want = torch.randn(z_0.shape, generator=g, dtype=torch.float64)
    want = want + 0.3 * torch.randn(2, 3, 1, 1, generator=g, dtype=torch.float64)
    assert eps.dtype == torch.float64 and torch.equal(eps, want)
    with pytest.raises(ValueError, match=r"^`p`: "):
        drop_prompts(["a"], 1.5)
    with pytest.raises(ValueError, match=r"^`prompts`: expected a list of strings, received a single str$"):
        drop_prompts("a disc", 0.5)
    with pytest.raises(ValueError, match=r"^`eps_pred`: expected shape \(2, 3\) \(the noise's\), received shape \(3, 2\)$"):
        eps_loss(torch.zeros(2, 3), torch.zeros(3, 2))


def test_plain_noise_by_default_and_uniform_timesteps_ignore_the_curriculums_floor():
    """sample_noise without an offset is N(0, I) alone (no second draw); the floor bounds only the curriculum's
    draws, so a uniform draw with any floor is the uniform draw."""
    z_0 = torch.zeros(2, 3, 4, 4)
    assert torch.equal(sample_noise(z_0, generator=torch.Generator().manual_seed(0)),
                       torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)))
    draw = lambda **kw: sample_timesteps(64, 1000, "uniform", torch.Generator().manual_seed(0), **kw)
    assert torch.equal(draw(floor=999), draw())


def test_add_noise_keeps_the_samples_dtype_under_a_float32_schedule():
    """bf16 training (the precision ablation) noises bf16 samples with the float32 alpha_bar: the result stays bf16,
    each term rounded as bf16 arithmetic rounds it."""
    alpha_bar = torch.linspace(0.999, 0.01, 1000)
    z_0, eps = torch.randn(2, 3, 4, 4).bfloat16(), torch.randn(2, 3, 4, 4).bfloat16()
    t = torch.tensor([10, 900])
    z_t = add_noise(z_0, eps, t, alpha_bar)
    a = alpha_bar[t].bfloat16().view(-1, 1, 1, 1)
    assert z_t.dtype == torch.bfloat16
    assert torch.equal(z_t, a.sqrt() * z_0 + (1 - a).sqrt() * eps)
