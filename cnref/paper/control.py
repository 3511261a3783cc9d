"""What a control hands to the locked UNet, and the ways it is scaled and combined; and the protocol every control
design answers (`Design`: the ControlNet here, its successors in cnref.successors).

A control is 13 residuals for SD's topology: one per encoder skip (12) plus one for the middle block.
The locked decoder adds residual i to skip i and the middle residual to the middle block's output.

Scales per connection i = 0..12 (12 = the middle block):
- strength s:                           w_i = s
- guess mode, official code:            w_i = s * 0.825 ** (12 - i)
- guess mode, diffusers:                w_i = s * logspace(-1, 0, 13)_i   (close to, not equal to, the above)
- CFG resolution weighting (paper 3.4): w_i = s * 64 / h_i, h_i the connection's spatial size,
                                        generalised to h_max / h_i (h_max = the sample's size).
  Read literally these are >= 1 (up to 8x on SD's coarsest connections); the paper says the weighting works
  "by reducing the CFG guidance strength", which only weights <= 1 can do:
- the same weights normalised to at most 1:  w_i = s * h_min / h_i  (1 on the coarsest connections).
Several ControlNets compose by a plain sum of their residuals (paper section 3.4, no weighting).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..checks import check_choice, fail

SCALE_KINDS = {"uniform", "guess_official", "guess_diffusers", "resolution", "resolution_normalized"}


@dataclass
class Control:
    down: tuple[torch.Tensor, ...]   # residuals for the encoder skips, highest resolution first
    mid: torch.Tensor                # residual for the middle block

    @property
    def residuals(self) -> tuple[torch.Tensor, ...]:
        return (*self.down, self.mid)

    @property
    def sizes(self) -> list[int]:
        """h_i: the spatial size of each connection."""
        return [r.shape[-2] for r in self.residuals]

    def scaled(self, w: torch.Tensor | float) -> "Control":
        """Multiply residual i by w_i (a float scales all connections alike)."""
        n = len(self.residuals)
        w = torch.as_tensor(w, dtype=self.mid.dtype, device=self.mid.device)
        if w.ndim == 0:
            w = w.expand(n)
        if w.shape != (n,):
            fail("w", f"a scalar or {n} per-connection scales", f"shape {tuple(w.shape)}")
        r = [x * w_i for x, w_i in zip(self.residuals, w)]
        return Control(tuple(r[:-1]), r[-1])

    def __add__(self, other: "Control") -> "Control":
        if len(self.down) != len(other.down):
            fail("other", f"a control with {len(self.down)} down residuals", len(other.down))
        return Control(tuple(a + b for a, b in zip(self.down, other.down)), self.mid + other.mid)


def compose(controls: list[Control], weights: list[float] | None = None) -> Control:
    """Multi-ControlNet: sum_k weight_k * control_k (the paper: all weights 1, a plain sum)."""
    if not controls:
        fail("controls", "at least one Control", "an empty list")
    if weights is not None and len(weights) != len(controls):
        fail("weights", f"{len(controls)} weights (one per control)", f"{len(weights)}")
    weights = weights or [1.0] * len(controls)
    total = controls[0].scaled(weights[0])
    for c, w in zip(controls[1:], weights[1:]):
        total = total + c.scaled(w)
    return total


def connection_scales(kind: str = "uniform", strength: float = 1.0, sizes: list[int] | None = None,
                      n: int = 13) -> torch.Tensor:
    """Per-connection scales w_i, i = 0..n-1 (i = n-1 is the middle block). See module docstring."""
    check_choice("kind", kind, SCALE_KINDS)
    i = torch.arange(n, dtype=torch.float64)
    if kind == "uniform":
        w = torch.ones(n, dtype=torch.float64)
    elif kind == "guess_official":
        w = 0.825 ** (n - 1 - i)
    elif kind == "guess_diffusers":
        w = torch.logspace(-1, 0, n, dtype=torch.float64)
    else:
        if sizes is None or len(sizes) != n:
            fail("sizes", f"{n} connection sizes h_i", sizes)
        h = torch.tensor(sizes, dtype=torch.float64)
        w = h.max() / h                                   # w_i = h_max / h_i  (paper: 64 / h_i)
        if kind == "resolution_normalized":
            w = w / w.max()                               # w_i = h_min / h_i <= 1
    return (strength * w).float()


def controlled_unet(unet, z_t: torch.Tensor, t, c_t: torch.Tensor, control: Control | None = None) -> torch.Tensor:
    """eps_theta(z_t, t, c_t, c_f): the locked UNet with the control's residuals added (None: plain UNet).

    Both residual arguments are always passed: diffusers ignores a middle residual that comes alone.
    """
    if control is None:
        return unet(z_t, t, c_t).sample
    if control.mid.shape[0] != z_t.shape[0]:
        fail("control", f"residuals for batch {z_t.shape[0]}", f"batch {control.mid.shape[0]}")
    return unet(z_t, t, c_t, down_block_additional_residuals=control.down,
                mid_block_additional_residual=control.mid).sample


class Design(nn.Module):
    """The protocol of a control design over a locked Stable-Diffusion-shaped UNet. Training, sampling,
    evaluation and the benches call these methods and never ask which design they hold:

    - `eps(unet, z_t, t, c_t, cond)`: eps_theta(z_t, t, c_t, c_i), the locked `unet` under this control. `cond` is
      the condition or what `once` made of it; one with fewer rows than z_t is repeated (CFG's two halves);
    - `once(cond)`: what a generation computes once, before its first step (the condition itself, unless the
      design reads it without t or z_t: T2I-Adapter's features);
    - `trainable()`: the parameters an optimiser gets;
    - `diffusers_model(unet)`: the same model as a diffusers class, where diffusers has one.

    `residual`: the design hands the UNet 13 residuals (`forward(z_t, t, c_t, cond) -> Control`), so the guidance
    modes, per-connection scales and multi-ControlNet sums of section 3.4 apply, and cnref's probe can read it.
    """
    residual = False

    def eps(self, unet, z_t: torch.Tensor, t, c_t: torch.Tensor, cond) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__}.eps")

    def once(self, cond: torch.Tensor):
        return cond

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def diffusers_model(self, unet) -> nn.Module:
        fail("net", "a design diffusers has a class for (ControlNet, T2I-Adapter, ControlNet-XS)", type(self).__name__)


def repeat_rows(cond, n: int):
    """A condition (a tensor, or a list of feature tensors) repeated to n rows, where it has fewer (CFG's halves)."""
    rows = (cond if torch.is_tensor(cond) else cond[0]).shape[0]
    reps = n // rows
    if reps <= 1:
        return cond
    return cond.repeat(reps, 1, 1, 1) if torch.is_tensor(cond) else [f.repeat(reps, 1, 1, 1) for f in cond]
