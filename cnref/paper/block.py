"""Eq. 2: a locked neural block F(.; Θ) plus a trainable copy F(.; Θc) joined by two zero convs.

    y_c = F(x; Θ) + Z( F( x + Z(c; Θz1); Θc ); Θz2 )

At initialisation both Z output zero, so y_c = y = F(x; Θ): adding a ControlNet changes nothing until
training moves the zero convs, and no random noise reaches the deep features of the locked block.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..checks import check_tensor
from .zero_conv import zero_conv


class ControlledBlock(nn.Module):
    """Eq. 2 around any block F mapping (B, C_in, H, W) -> (B, C_out, H', W')."""

    def __init__(self, block: nn.Module, in_channels: int, out_channels: int, cond_channels: int | None = None):
        super().__init__()
        self.trainable = copy.deepcopy(block).requires_grad_(True)    # F(.; Θc), initialised from Θ
        self.locked = block.requires_grad_(False)                      # F(.; Θ)
        self.z1 = zero_conv(cond_channels or in_channels, in_channels)  # Z(.; Θz1)
        self.z2 = zero_conv(out_channels)                               # Z(.; Θz2)
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, ndim=4, channels=self.in_channels)
        check_tensor("c", c, ndim=4, batch=x.shape[0], channels=self.z1.in_channels, size=tuple(x.shape[-2:]))
        y = self.locked(x)                                     # F(x; Θ)
        return y + self.z2(self.trainable(x + self.z1(c)))     # + Z(F(x + Z(c; Θz1); Θc); Θz2)
