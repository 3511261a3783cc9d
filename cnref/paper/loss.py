"""The training objective, Eq. 3 of the paper:

    L = E_{z_0, t, c_t, c_f, eps ~ N(0,1)} [ || eps - eps_theta(z_t, t, c_t, c_f) ||_2^2 ]

with z_t = sqrt(alpha_bar_t) z_0 + sqrt(1 - alpha_bar_t) eps (the forward process) and, during training,
50% of the text prompts c_t replaced by empty strings so that the ControlNet learns to read the
condition c_f by itself.
"""
from __future__ import annotations

import torch

from ..checks import check_choice, check_positive, check_probability, fail


def drop_prompts(prompts: list[str], p: float = 0.5, generator: torch.Generator | None = None) -> list[str]:
    """Replace each prompt by "" with probability p (the paper's 50% prompt dropout)."""
    check_probability("p", p)
    if isinstance(prompts, str):
        fail("prompts", "a list of strings", "a single str")
    keep = torch.rand(len(prompts), generator=generator) >= p
    return [c if k else "" for c, k in zip(prompts, keep.tolist())]


def sample_noise(z_0: torch.Tensor, offset: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """eps ~ N(0, I), plus `offset` * N(0, 1) constant per image and channel (offset noise).

    Offset noise lets the model change an image's mean colour, which SD's betas otherwise leak at t = T
    (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed"); the regression target of Eq. 3 stays the noise that was added.
    """
    eps = torch.randn(z_0.shape, generator=generator, dtype=z_0.dtype).to(z_0.device)
    if offset:
        eps = eps + offset * torch.randn(z_0.shape[:2] + (1, 1), generator=generator, dtype=z_0.dtype).to(z_0.device)
    return eps


TIMESTEP_KINDS = {"uniform", "high_t", "cubic", "curriculum"}


def sample_timesteps(batch: int, T: int, kind: str = "uniform", generator: torch.Generator | None = None,
                     device=None, floor: int = 0) -> torch.Tensor:
    """Training timesteps, by kind (u ~ U[0, 1)):
    - `uniform`: t ~ U{0..T-1} (the paper);
    - `high_t`: t = T-1-floor(T u^2), a fixed bias to large t for the whole run (a reading of ControlNet GitHub
      issue #628);
    - `cubic`: t = floor((1 - u^3) T), T2I-Adapter's schedule, which favours large t;
    - `curriculum`: t ~ U{floor..T-1}, with a lower bound the caller decays to 0 over training
      (`curriculum_floor`): #628's proposal, large t at the start, uniform later.
    """
    check_choice("kind", kind, TIMESTEP_KINDS)
    check_positive("batch", batch, integer=True)
    if kind in ("uniform", "curriculum"):
        t = torch.randint(floor if kind == "curriculum" else 0, T, (batch,), generator=generator)
    elif kind == "high_t":
        u = torch.rand(batch, generator=generator)
        t = (T - 1 - (T * u ** 2).long()).clamp(0, T - 1)
    else:
        u = torch.rand(batch, generator=generator)
        t = ((1 - u ** 3) * T).long().clamp(0, T - 1)
    return t.to(device)


def curriculum_floor(step: int, T: int, start: float = 0.8, decay_steps: int = 250) -> int:
    """The curriculum's lower bound on t at a training step: start x T at step 0, falling linearly to 0 at
    `decay_steps` (half the cpu preset's run, before the uniform run's jump), uniform sampling after."""
    return int(start * T * max(0.0, 1 - step / decay_steps))


def add_noise(z_0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Forward process: z_t = sqrt(alpha_bar_t) z_0 + sqrt(1 - alpha_bar_t) eps."""
    a = alpha_bar.to(z_0.device)[t].to(z_0.dtype).view(-1, *([1] * (z_0.ndim - 1)))
    return a.sqrt() * z_0 + (1 - a).sqrt() * eps


def eps_loss(eps: torch.Tensor, eps_pred: torch.Tensor) -> torch.Tensor:
    """Eq. 3: || eps - eps_theta(z_t, t, c_t, c_f) ||^2, averaged over pixels and batch."""
    if eps.shape != eps_pred.shape:
        fail("eps_pred", f"shape {tuple(eps.shape)} (the noise's)", f"shape {tuple(eps_pred.shape)}")
    return torch.mean((eps.float() - eps_pred.float()) ** 2)


def eq3_loss(eps_theta, encode_prompt, z_0: torch.Tensor, prompts: list[str], alpha_bar: torch.Tensor, *,
             prompt_dropout: float, offset_noise: float, timesteps: str = "uniform", t_floor: int = 0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Eq. 3 end to end, for the base's pretraining and for a ControlNet's training alike:

        c_t = text(drop(prompts));  eps ~ N(0, I) (+ offset);  t ~ U{0..T-1};
        z_t = sqrt(alpha_bar_t) z_0 + sqrt(1 - alpha_bar_t) eps;  L = || eps - eps_theta(z_t, t, c_t) ||^2

    eps_theta(z_t, t, c_t) is the model being trained (a ControlNet run closes over its condition c_f);
    encode_prompt maps strings to c_t. The random draws come from `generator` in this order, so a run is
    a pure function of its seeds.
    """
    c_t = encode_prompt(drop_prompts(prompts, prompt_dropout, generator))
    eps = sample_noise(z_0, offset_noise, generator)
    t = sample_timesteps(z_0.shape[0], len(alpha_bar), timesteps, generator, device=z_0.device, floor=t_floor)
    z_t = add_noise(z_0, eps, t, alpha_bar)
    return eps_loss(eps, eps_theta(z_t, t, c_t))
