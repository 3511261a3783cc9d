"""How much a control uses its condition: a continuous number, recorded at every validation beside the IoU.

The IoU of sampled images thresholds a re-detected disc, so by itself it cannot tell a model that learns the
condition suddenly from one whose use of it grows steadily and crosses the detection threshold. These numbers
have no threshold. On a fixed held-out batch (the validation conditions with their perfect prompts), fixed noise
and a fixed grid of timesteps, with the blank condition an all-black image (no outline) and

    d = eps_theta(z_t, t, c_t, c_i) - eps_theta(z_t, t, c_t, blank):

    loss_gap = mean [ ||eps - eps_theta(z_t, t, c_t, blank)||^2 - ||eps - eps_theta(z_t, t, c_t, c_i)||^2 ]
        Eq. 3's loss without the condition minus with it (plain Gaussian noise, no offset): > 0 when the condition
        helps predict the noise, exactly 0 while a zero-initialised control adds nothing;
    in_disc = sum_{p in disc} |d_p|^2 / sum_p |d_p|^2
        the share of the condition's effect on eps that falls inside the disc (None while there is no effect).

Any design of the control protocol is measured the same way (through `eps`).
"""
from __future__ import annotations

import torch

from ..paper.loss import add_noise

USE_T = (100, 300, 500, 700, 900)     # the fixed grid of timesteps, spread over [0, T)
USE_SEED = 20_000                      # the fixed noise: the same for every run


@torch.no_grad()
def use_inputs(x_0: torch.Tensor, c_t: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor | None,
               alpha_bar: torch.Tensor, t_grid=USE_T, seed: int = USE_SEED) -> dict:
    """The fixed batch: each held-out sample at every t of `t_grid`, with noise from its own generator (training's
    random draws are untouched)."""
    g = torch.Generator().manual_seed(seed)
    k = len(t_grid)
    rep = lambda x: x.repeat(k, *[1] * (x.ndim - 1))
    t = torch.tensor(t_grid).repeat_interleave(x_0.shape[0])
    eps = torch.randn((len(t), *x_0.shape[1:]), generator=g)
    return {"z_t": add_noise(rep(x_0), eps, t, alpha_bar), "t": t, "eps": eps, "c_t": rep(c_t), "cond": rep(cond),
            "mask": None if mask is None else rep(mask.float())}


@torch.no_grad()
def condition_use(net, unet, inputs: dict, chunk: int = 64) -> dict:
    """loss_gap and in_disc (module docstring) of the design `net` over the locked `unet`, on `use_inputs`."""
    dev = next(unet.parameters()).device
    gap, inside, total, n = 0.0, 0.0, 0.0, 0
    for s in range(0, len(inputs["t"]), chunk):
        z_t, t, eps, c_t, cond = (inputs[k][s:s + chunk].to(dev) for k in ("z_t", "t", "eps", "c_t", "cond"))
        e_c = net.eps(unet, z_t, t, c_t, net.once(cond)).float()
        e_b = net.eps(unet, z_t, t, c_t, net.once(torch.zeros_like(cond))).float()
        gap += float(((eps - e_b) ** 2 - (eps - e_c) ** 2).sum())
        n += eps.numel()
        d2 = ((e_c - e_b) ** 2).sum(1, keepdim=True)
        total += float(d2.sum())
        if inputs["mask"] is not None:
            inside += float((d2 * inputs["mask"][s:s + chunk].to(dev)).sum())
    in_disc = round(inside / total, 4) if total > 0 and inputs["mask"] is not None else None
    return {"use_loss_gap": round(gap / n, 8), "use_in_disc": in_disc}
