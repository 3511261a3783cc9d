"""T2I-Adapter (Mou et al. 2023, "T2I-Adapter: Learning Adapters to Dig out More Controllable Ability for
Text-to-Image Diffusion Models"), over a locked Stable-Diffusion-shaped UNet.

The adapter is diffusers' `T2IAdapter` (full_adapter): pixel-unshuffle by `downscale_factor` (SD: 8, from
512x512 conditions to the 64x64 latent; here the condition's factor over the sample), then 4 stages of
conv/residual blocks, each stage after the first halving the resolution. Stage k's features F_c^k are added to
the locked encoder's features at the end of level k, before its downsampler:

    h^k <- h^k + F_c^k,      F_c = adapter(c_i)        (no t, no prompt: computed once per generation)

diffusers adds the features of a down block *without* cross-attention after that block's downsampler: it
assumes SD's layout, whose only such block is the last one, which has no downsampler. The cpu base has its plain
blocks first (attention only at 8x8 and 4x4), so `adapted` adds each level's features where the official code
does, at the output of the level's last layer, through forward hooks that live for one call; on SD's layout it
equals diffusers' own `down_intrablock_additional_residuals` path (tested).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
from diffusers import T2IAdapter
from torch import nn

from ..checks import check_positive, check_tensor, fail
from ..paper.control import Design, repeat_rows


def adapter_for(unet, cond_channels: int = 3, factor: int = 1, num_res_blocks: int = 2) -> T2IAdapter:
    """diffusers' full T2I-Adapter with the UNet's level widths, for conditions at `factor` x the sample's size."""
    return T2IAdapter(in_channels=cond_channels, channels=list(unet.config.block_out_channels),
                      num_res_blocks=num_res_blocks, downscale_factor=factor, adapter_type="full_adapter")


def level_outputs(unet) -> list[nn.Module]:
    """The last layer of each encoder level: its features there are the level's output before downsampling."""
    return [b.attentions[-1] if getattr(b, "attentions", None) else b.resnets[-1] for b in unet.down_blocks]


@contextmanager
def adapted(unet, features: list[torch.Tensor]):
    """Within the block, every call of `unet` adds features[k] to the output of encoder level k."""
    layers = level_outputs(unet)
    if len(features) != len(layers):
        fail("features", f"{len(layers)} tensors (one per encoder level)", len(features))

    def add(f):
        def hook(module, args, out):
            if isinstance(out, tuple):              # a transformer block called with return_dict=False
                return (out[0] + f, *out[1:])
            return out + f
        return hook

    handles = [layer.register_forward_hook(add(f)) for layer, f in zip(layers, features)]
    try:
        yield unet
    finally:
        for h in handles:
            h.remove()


def adapted_unet(unet, z_t: torch.Tensor, t, c_t: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
    """eps_theta(z_t, t, c_t, F_c): the locked UNet with the adapter's features added level by level."""
    check_tensor("z_t", z_t, ndim=4)
    for k, f in enumerate(features):
        if f.shape[0] != z_t.shape[0]:
            fail(f"features[{k}]", f"batch {z_t.shape[0]} (as z_t)", f"batch {f.shape[0]}")
    with adapted(unet, features):
        return unet(z_t, t, c_t).sample


@dataclass(frozen=True)
class T2IAdapterConfig:
    design: ClassVar[str] = "t2i_adapter"
    factor: int = 1               # condition size / sample size (SD: 8)
    cond_channels: int = 3

    def __post_init__(self):
        check_positive("factor", self.factor, integer=True)
        check_positive("cond_channels", self.cond_channels, integer=True)

    def build(self, unet, num_train_timesteps: int = 1000) -> "T2IAdapterControl":
        return T2IAdapterControl(unet, self)


class T2IAdapterControl(Design):
    """diffusers' T2IAdapter for the locked UNet, as a design: its features depend on the condition alone, so a
    generation computes them once (`once`) and every step adds them."""

    def __init__(self, unet, cfg: T2IAdapterConfig = T2IAdapterConfig()):
        super().__init__()
        self.cfg = cfg
        self.adapter = adapter_for(unet, cfg.cond_channels, cfg.factor)

    def forward(self, cond: torch.Tensor) -> list[torch.Tensor]:
        return self.adapter(cond)

    def once(self, cond: torch.Tensor) -> list[torch.Tensor]:
        return self(cond)

    def eps(self, unet, z_t: torch.Tensor, t, c_t: torch.Tensor, cond) -> torch.Tensor:
        """`cond`: the condition, or its features from `once`."""
        features = self(cond) if torch.is_tensor(cond) else cond
        return adapted_unet(unet, z_t, t, c_t, repeat_rows(features, z_t.shape[0]))

    def diffusers_model(self, unet) -> T2IAdapter:
        return self.adapter
