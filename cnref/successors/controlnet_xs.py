"""ControlNet-XS (Zavadski, Feiden, Rother, ECCV 2024, "ControlNet-XS: Rethinking the Control of Text-to-Image
Diffusion Models as Feedback-Control Systems"), over a locked Stable-Diffusion-shaped UNet.

A small control encoder, trained from scratch (`size_ratio` of the base's widths), runs beside the locked
encoder and middle block, with connections both ways at every layer: the base's features are concatenated into
the control's input (base -> control), and the control's output enters the base through a zero convolution
(control -> base):

    h_ctrl <- F_ctrl([h_ctrl, Z_b->c(h_base)]),     h_base <- F_base(h_base) + Z_c->b(h_ctrl)

and the control encoder's skips also reach the decoder, each through a zero convolution added where the decoder
reads the base's matching skip (diffusers' `UpBlockControlNetXSAdapter.ctrl_to_base`), as ControlNet's
residuals do. At initialisation every one of these zero convolutions outputs zero, so the model is the base
exactly. The decoder's own weights are the base's, locked.

The official training config (configs/training/sd/sd15_encD_canny_53m.yaml in vislearn/ControlNet-XS) trains at
lr 1e-5; cnref trains every design at the recipe's lr (the successors ablation).

This is diffusers' `ControlNetXSAdapter` + `UNetControlNetXSModel`. diffusers builds them for SD's 4 latent
channels only; the cpu base works on 3 pixel channels, so `lift` gives an exactly equivalent 4-channel UNet
(a 4th input channel with zero weights, always fed zeros, and a 4th output channel that is dropped).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from diffusers import ControlNetXSAdapter, UNetControlNetXSModel
from diffusers.utils import logging as dlogging
from torch import nn
from torch.nn import functional as F

from ..checks import check_positive, check_power_of_two, check_tensor, fail
from ..paper.control import Design, repeat_rows

LATENT = 4                      # the channels diffusers' ControlNet-XS is built for
EMBEDDING = (16, 32, 96, 256)   # the condition embedding's widths (diffusers' default, SD's 8x)


def lift(unet) -> nn.Module:
    """A copy of `unet` taking and returning LATENT channels, equal to it on its own channels when the extra
    input channels are zero."""
    c = unet.config.in_channels
    if c > LATENT or unet.config.out_channels != c:
        fail("unet", f"a UNet with in_channels = out_channels <= {LATENT}", f"{c} -> {unet.config.out_channels}")
    u = copy.deepcopy(unet)
    conv_in, conv_out = u.conv_in, u.conv_out
    u.conv_in = nn.Conv2d(LATENT, conv_in.out_channels, conv_in.kernel_size, padding=conv_in.padding)
    u.conv_out = nn.Conv2d(conv_out.in_channels, LATENT, conv_out.kernel_size, padding=conv_out.padding)
    with torch.no_grad():
        u.conv_in.weight.zero_()
        u.conv_in.weight[:, :c] = conv_in.weight
        u.conv_in.bias.copy_(conv_in.bias)
        u.conv_out.weight.zero_()
        u.conv_out.bias.zero_()
        u.conv_out.weight[:c] = conv_out.weight
        u.conv_out.bias[:c] = conv_out.bias
    u.register_to_config(in_channels=LATENT, out_channels=LATENT)
    return u


@dataclass(frozen=True)
class ControlNetXSConfig:
    design: ClassVar[str] = "controlnet_xs"
    factor: int = 1               # condition size / sample size (SD: 8)
    cond_channels: int = 3
    size_ratio: float = 0.25      # the control encoder's widths over the base's

    def __post_init__(self):
        check_positive("factor", self.factor, integer=True)
        check_positive("cond_channels", self.cond_channels, integer=True)
        check_positive("size_ratio", self.size_ratio)

    def build(self, unet, num_train_timesteps: int = 1000) -> "ControlNetXS":
        return ControlNetXS(unet, self.size_ratio, self.cond_channels, self.factor)


class ControlNetXS(Design):
    """The locked base and a ControlNet-XS control encoder in one diffusers model; only the control trains. It
    runs its own (lifted) copy of the base, so `eps` ignores the `unet` it is handed."""

    def __init__(self, unet, size_ratio: float = 0.25, cond_channels: int = 3, factor: int = 1):
        super().__init__()
        self.channels = unet.config.in_channels
        check_power_of_two("factor", factor, 8, "the condition embedding's stride-2 stages")
        base = lift(unet)
        # the condition embedding halves the resolution between its widths: SD's (16, 32, 96, 256) for 8x
        widths = EMBEDDING[:factor.bit_length()]
        level = dlogging.get_verbosity()
        dlogging.set_verbosity_error()    # from_unet casts with .to() and warns about an empty list of fp32 modules
        try:
            adapter = ControlNetXSAdapter.from_unet(base, size_ratio=size_ratio, conditioning_channels=cond_channels,
                                                    conditioning_embedding_out_channels=widths)
            self.model = UNetControlNetXSModel.from_unet(base, adapter)
        finally:
            dlogging.set_verbosity(level)
        self.model.freeze_unet_params()            # the base's parts stay locked

    def forward(self, z_t: torch.Tensor, t, c_t: torch.Tensor, cond: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """eps_theta(z_t, t, c_t, c_i): the base's eps with the control's feedback at every layer."""
        check_tensor("z_t", z_t, ndim=4, channels=self.channels)
        z = F.pad(z_t, (0, 0, 0, 0, 0, LATENT - self.channels))          # the extra channels: zeros
        eps = self.model(z, t, c_t, controlnet_cond=cond, conditioning_scale=scale).sample
        return eps[:, :self.channels]

    def eps(self, unet, z_t: torch.Tensor, t, c_t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self(z_t, t, c_t, repeat_rows(cond, z_t.shape[0]))

    def diffusers_model(self, unet) -> UNetControlNetXSModel:
        return self.model
