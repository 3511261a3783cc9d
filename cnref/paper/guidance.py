"""Classifier-free guidance with a ControlNet (paper section 3.4).

    eps_prd = eps_uc + beta_cfg * (eps_c - eps_uc)

Where the control goes is a choice the paper discusses:
- `both`: the control in both branches (the official code: the unconditional branch keeps the hint);
- `cond_only`: the control only in eps_c (diffusers' guess-mode pipeline; CFG then amplifies the control);
- `cond_only_weighted`: the control only in eps_c, each connection scaled by w_i = 64 / h_i
  (generalised to h_max / h_i): the paper's "CFG resolution weighting", read literally (weights >= 1);
- `cond_only_normalized`: the same weights normalised to at most 1, w_i = h_min / h_i: the reading in which
  the weighting "reduces the CFG guidance strength", as the paper says it does.
Guess mode is `cond_only` with an empty prompt and guess-mode connection scales.
"""
from __future__ import annotations

import torch

from ..checks import check_choice, fail
from .control import Control, compose, connection_scales, controlled_unet

MODES = {"both", "cond_only", "cond_only_weighted", "cond_only_normalized"}
WEIGHTING = {"cond_only_weighted": "resolution", "cond_only_normalized": "resolution_normalized"}


def cfg(eps_uc: torch.Tensor, eps_c: torch.Tensor, beta: float) -> torch.Tensor:
    """eps_prd = eps_uc + beta_cfg (eps_c - eps_uc)."""
    return eps_uc + beta * (eps_c - eps_uc)


def _controls(controlnets, z, t, text, scales) -> Control:
    """Plain sum over (controlnet, condition) pairs of each one's scaled residuals."""
    out = []
    for k, (net, cond) in enumerate(controlnets):
        reps = z.shape[0] // cond.shape[0]
        c = net(z, t, text, cond.repeat(reps, 1, 1, 1) if reps > 1 else cond)
        w = scales[k] if isinstance(scales, (list, tuple)) else scales
        out.append(c if w is None else c.scaled(w))
    return compose(out)


def _cond_control(controlnets, z_t, t, c_t, scales, mode: str) -> Control:
    """The control of the conditional branch; with a weighted mode, times its w_i (WEIGHTING)."""
    ctl = _controls(controlnets, z_t, t, c_t, scales)
    if mode in WEIGHTING:
        ctl = ctl.scaled(connection_scales(WEIGHTING[mode], sizes=ctl.sizes, n=len(ctl.residuals)))
    return ctl


def guided_eps(unet, controlnets, z_t: torch.Tensor, t, c_t: torch.Tensor, c_uc: torch.Tensor | None,
               beta: float = 9.0, mode: str = "both", scales=None) -> torch.Tensor:
    """eps_prd for one denoising step.

    controlnets: list of (ControlNet, condition) pairs, composed by a plain sum (may be empty); or one
        (design, condition) pair of any design of the control protocol (`Design`), its control in both branches;
    scales: None, one per-connection vector for all, or a list with one per ControlNet;
    c_uc: the unconditional text embedding (None or beta == 1: no guidance, eps_c only).
    """
    check_choice("mode", mode, MODES)
    if not all(net.residual for net, _ in controlnets):
        return _design_eps(unet, controlnets, z_t, t, c_t, c_uc, beta, mode, scales)
    if c_uc is None or beta == 1.0:     # eps_prd = eps_c: one branch, the mode's weighting still applies
        ctl = _cond_control(controlnets, z_t, t, c_t, scales, mode) if controlnets else None
        return controlled_unet(unet, z_t, t, c_t, ctl)
    z, t2, text = _both_branches(z_t, t, c_t, c_uc)
    ctl = None
    if controlnets and mode == "both":
        ctl = _controls(controlnets, z, t2, text, scales)
    elif controlnets:
        ctl_c = _cond_control(controlnets, z_t, t, c_t, scales, mode)
        zeros = [torch.zeros_like(r) for r in ctl_c.residuals]
        ctl = Control(tuple(torch.cat([zr, r]) for zr, r in zip(zeros[:-1], ctl_c.down)),
                      torch.cat([zeros[-1], ctl_c.mid]))
    eps_uc, eps_c = controlled_unet(unet, z, t2, text, ctl).chunk(2)
    return cfg(eps_uc, eps_c, beta)


def _both_branches(z_t: torch.Tensor, t, c_t: torch.Tensor, c_uc: torch.Tensor):
    """One batch for CFG's two branches: [z_t; z_t], [t; t], [c_uc; c_t]."""
    if c_uc.shape != c_t.shape:
        fail("c_uc", f"shape {tuple(c_t.shape)} (as c_t)", f"{tuple(c_uc.shape)}")
    t2 = torch.as_tensor(t, device=z_t.device)
    return torch.cat([z_t, z_t]), t2.repeat(2) if t2.ndim == 1 else t2, torch.cat([c_uc, c_t])


def _design_eps(unet, controlnets, z_t, t, c_t, c_uc, beta: float, mode: str, scales) -> torch.Tensor:
    """eps_prd under one design that hands no residuals (a successor of ControlNet, cnref.successors), its control
    in both branches: the CFG modes, per-connection scales and sums of section 3.4 are the ControlNet's."""
    if len(controlnets) != 1 or mode != "both" or scales is not None:
        fail("controlnets", "one successor of ControlNet, mode 'both', no per-connection scales",
             f"{len(controlnets)} controls, mode {mode!r}, scales {'given' if scales is not None else None}")
    (net, cond), = controlnets
    if c_uc is None or beta == 1.0:
        return net.eps(unet, z_t, t, c_t, cond)
    eps_uc, eps_c = net.eps(unet, *_both_branches(z_t, t, c_t, c_uc), cond).chunk(2)
    return cfg(eps_uc, eps_c, beta)
