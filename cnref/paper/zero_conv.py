"""Zero convolution Z: a 1x1 convolution whose weight W and bias B start at zero (paper, section 3.1).

    Z(I; W, B)_{p,i} = B_i + sum_j I_{p,j} W_{i,j}          (p: pixel, i: output, j: input channel)

Its gradients, for an upstream gradient g = dL/dZ:

    dL/dB_i     = sum_p g_{p,i}                 (dZ/dB = 1)
    dL/dW_{i,j} = sum_p g_{p,i} I_{p,j}         (dZ/dW = I, nonzero as soon as the input is)
    dL/dI_{p,j} = sum_i g_{p,i} W_{i,j}         (dZ/dI = W, zero while W = 0)

So at W = 0 the layer outputs zero and passes no gradient to its input, yet W itself receives a
nonzero gradient: after one optimiser step W != 0 and the gradient starts flowing into the trainable
copy behind it. Nothing harmful reaches the locked model at the start of training.
"""
from __future__ import annotations

import torch
from torch import nn

from ..checks import check_positive, check_tensor, fail


def zero_conv(in_channels: int, out_channels: int | None = None) -> nn.Conv2d:
    """Z: 1x1 conv with W = 0 and B = 0."""
    check_positive("in_channels", in_channels, integer=True)
    conv = nn.Conv2d(in_channels, out_channels or in_channels, kernel_size=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def gaussian_(conv: nn.Conv2d, std: float) -> nn.Conv2d:
    """Replace the zero init by W, B ~ N(0, std^2) (the paper's Fig. 8b ablation)."""
    check_positive("std", std)
    nn.init.normal_(conv.weight, std=std)
    nn.init.normal_(conv.bias, std=std)
    return conv


def zero_conv_grads(I: torch.Tensor, W: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Analytic (dL/dI, dL/dW, dL/dB) of a 1x1 conv Z(I; W, B), given g = dL/dZ.

    I: (N, C_in, H, W) input, W: (C_out, C_in) or (C_out, C_in, 1, 1) weight, g: (N, C_out, H, W).
    """
    check_tensor("I", I, ndim=4)
    check_tensor("g", g, ndim=4, batch=I.shape[0], size=tuple(I.shape[-2:]))
    W = W.reshape(W.shape[0], -1)
    if W.shape != (g.shape[1], I.shape[1]):
        fail("W", f"shape ({g.shape[1]}, {I.shape[1]}) = (C_out, C_in)", f"{tuple(W.shape)}")
    dI = torch.einsum("npij,pq->nqij", g, W)          # dL/dI_{p,j} = sum_i g_{p,i} W_{i,j}
    dW = torch.einsum("npij,nqij->pq", g, I)          # dL/dW_{i,j} = sum_p g_{p,i} I_{p,j}
    dB = g.sum(dim=(0, 2, 3))                          # dL/dB_i     = sum_p g_{p,i}
    return dI, dW, dB
