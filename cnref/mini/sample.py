"""Sampling: DDIM (Song et al. 2021) as a pure function over a diffusers scheduler and an eps function.

    x_{t-1} = sqrt(alpha_bar_{t-1}) x0_hat + sqrt(1 - alpha_bar_{t-1} - sigma_t^2) eps + sigma_t noise,
    x0_hat  = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)

`generate` wires the locked base, any number of ControlNets and classifier-free guidance into it.
"""
from __future__ import annotations

import torch
from tqdm import tqdm

from .base import MiniSD, sample_scheduler
from ..checks import check_positive, fail
from ..paper.guidance import guided_eps


@torch.no_grad()
def sample_ddim(eps_fn, z_T: torch.Tensor, scheduler, steps: int = 20, eta: float = 0.0,
                generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """Run DDIM from z_T with `steps` steps; eps_fn(z_t, t) -> eps_prd."""
    check_positive("steps", steps, integer=True)
    scheduler.set_timesteps(steps, device=z_T.device)
    z = z_T
    for t in tqdm(scheduler.timesteps, disable=not progress, desc="DDIM", leave=False):
        eps = eps_fn(z, t)
        z = scheduler.step(eps, t, z, eta=eta, generator=generator).prev_sample
    return z


@torch.no_grad()
def generate(base: MiniSD, prompts: list[str], controlnets=(), *, steps: int = 20, beta: float = 9.0,
             mode: str = "both", scales=None, seed: int = 0, negative: str = "", progress: bool = False,
             eta: float = 0.0) -> torch.Tensor:
    """Images (B, 3, s, s) in [-1, 1] for prompts, under (ControlNet, condition) pairs, with CFG."""
    if isinstance(prompts, str):
        fail("prompts", "a list of strings", "a single str")
    b, s = len(prompts), base.cfg.size
    for k, (_, cond) in enumerate(controlnets):
        if cond.shape[0] != b:
            fail(f"controlnets[{k}] condition", f"batch size {b} (one per prompt)", f"{cond.shape[0]}")
    dev = base.alpha_bar.device
    g = torch.Generator().manual_seed(seed)
    z_T = torch.randn(b, base.unet.config.in_channels, s, s, generator=g).to(dev)
    c_t = base.encode_prompt(prompts)
    c_uc = base.encode_prompt([negative] * b) if beta != 1.0 else None
    controlnets = [(net, net.once(cond.to(dev))) for net, cond in controlnets]     # T2I-Adapter: features, once

    def eps_fn(z, t):
        return guided_eps(base.unet, controlnets, z, t, c_t, c_uc, beta=beta, mode=mode, scales=scales)

    return sample_ddim(eps_fn, z_T, sample_scheduler(base.cfg), steps, eta=eta, generator=g,
                       progress=progress).clamp(-1, 1)
