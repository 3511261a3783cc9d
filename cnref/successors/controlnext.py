"""ControlNeXt (Peng et al. 2024, "ControlNeXt: Powerful and Efficient Control for Image and Video Generation"),
over a locked Stable-Diffusion-shaped UNet.

A small network on the condition (a convolutional embedding, two ResNet blocks that see the timestep, two
convolutions and a 1x1 projection to the width of the UNet's first level), injected once: into the hidden state
that leaves the UNet's first down block, by cross normalisation instead of a zero convolution,

    c  = pool(ControlNeXt(c_i, t))  (to that hidden state's size)
    h <- h + s * ((c - mean(c)) / std(c) * std(h) + mean(h))        (per sample, over C, H, W)

so the control starts at the feature's own scale rather than at zero. As in the official SD1.5 code
(dvlab-research/ControlNeXt, models/unet.py and models/controlnext.py): injected after down block 0, its skip
untouched, statistics per sample; the official module reduces 512x512 conditions 8x (a stride-2 embedding and
two downsamplers) to the latent's size, here the stride-2 stages are log2 of the condition's factor over the
sample. The official training also fine-tunes a subset of the base's weights, the attention output projections
(`unlock_attention_out`), with the module at 10x their learning rate; by default here only the module trains (the
base stays locked, as for every control in cnref), and a run's `base_to_out_lr` adds the official recipe.

`CrossNormControlNet` borrows the cross normalisation for the paper's ControlNet (the why-sudden study's
`injection` ablation): its 13 outputs pass through ordinary 1x1 convs and are brought to the statistics of the
locked feature they join, times s, instead of starting at exactly zero; the hint encoder's Z1 stays a zero conv.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import Downsample2D, ResnetBlock2D
from torch import nn
from torch.nn import functional as F

from ..checks import check_positive, check_power_of_two, check_tensor, check_timesteps, fail
from ..paper.control import Control, Design, repeat_rows
from ..paper.controlnet import ControlNet, ControlNetConfig, encoder_features


def cross_normalize(c: torch.Tensor, h: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """ControlNeXt's cross normalisation, the alternative to a zero conv: the control c brought to the statistics
    of the locked feature h it is added to, per sample over (C, H, W):

        c' = (c - mean(c)) / (std(c) + eps) * std(h) + mean(h)      (then h <- h + s c')
    """
    dims = tuple(range(1, c.ndim))
    mu_c, sd_c = c.mean(dims, keepdim=True), c.std(dims, keepdim=True)
    mu_h, sd_h = h.mean(dims, keepdim=True), h.std(dims, keepdim=True)
    return (c - mu_c) / (sd_c + eps) * sd_h + mu_h


@dataclass(frozen=True)
class ControlNeXtConfig:
    design: ClassVar[str] = "controlnext"
    factor: int = 1               # condition size / sample size (SD: 8)
    cond_channels: int = 3
    scale: float = 0.35           # s: ControlNeXt's value for sparse conditions such as Canny edges

    def __post_init__(self):
        check_positive("factor", self.factor, integer=True)
        check_positive("cond_channels", self.cond_channels, integer=True)
        check_positive("scale", self.scale)

    def build(self, unet, num_train_timesteps: int = 1000) -> "ControlNeXt":
        return ControlNeXt(unet, self.cond_channels, self.factor, scale=self.scale)


class ControlNeXt(Design):
    """The condition network: (c_i, t) -> a control at the sample's resolution with the first level's width."""

    def __init__(self, unet, cond_channels: int = 3, factor: int = 1, widths: tuple[int, int] = (32, 64),
                 scale: float = 1.0):
        super().__init__()
        check_power_of_two("factor", factor, 8, "the official module's stride-2 stages")
        stages = factor.bit_length() - 1                 # stride-2 stages: 3 for SD's 8x
        w0, w1 = widths
        temb = 4 * w0
        self.scale, self.out_width = scale, unet.config.block_out_channels[0]
        self.time_proj = Timesteps(w0, True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(w0, temb)
        self.embedding = nn.Sequential(
            nn.Conv2d(cond_channels, w0 // 2, 3, stride=2 if stages > 2 else 1, padding=1),
            nn.GroupNorm(2, w0 // 2), nn.ReLU(),
            nn.Conv2d(w0 // 2, w0 // 2, 3, padding=1), nn.GroupNorm(2, w0 // 2), nn.ReLU(),
            nn.Conv2d(w0 // 2, w0, 3, padding=1), nn.GroupNorm(2, w0), nn.ReLU())
        self.down_res = nn.ModuleList([ResnetBlock2D(in_channels=w0, out_channels=w0, temb_channels=temb, groups=4),
                                       ResnetBlock2D(in_channels=w0, out_channels=w1, temb_channels=temb, groups=8)])
        self.down_sample = nn.ModuleList(
            Downsample2D(c, use_conv=True, out_channels=c, padding=1) if k < stages else nn.Identity()
            for k, c in enumerate((w0, w1)))
        self.mid = nn.Sequential(nn.Conv2d(w1, w1, 3, padding=1), nn.ReLU(), nn.GroupNorm(8, w1),
                                 nn.Conv2d(w1, w1, 3, padding=1), nn.GroupNorm(8, w1))
        self.out = nn.Conv2d(w1, self.out_width, 1)

    def forward(self, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        check_tensor("cond", cond, ndim=4)
        emb = self.time_embedding(self.time_proj(t.expand(cond.shape[0])).to(cond.dtype))
        h = self.embedding(cond)
        for res, down in zip(self.down_res, self.down_sample):
            h = down(res(h, emb))
        return self.out(self.mid(h) + h)

    def eps(self, unet, z_t: torch.Tensor, t, c_t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return controlnext_unet(unet, self, z_t, t, c_t, repeat_rows(cond, z_t.shape[0]))

    def diffusers_model(self, unet):
        fail("net", "a design diffusers has a class for (ControlNeXt has none: its official code ships its own "
             "UNet; keep its state dict)", "ControlNeXt")


def unlock_attention_out(unet) -> list[nn.Parameter]:
    """ControlNeXt's official recipe (train_controlnext.py): every parameter of the base UNet whose name holds
    "to_out", the attention output projections, trains too; returns them."""
    params = [p for n, p in unet.named_parameters() if "to_out" in n]
    if not params:
        fail("unet", "a UNet with attention (parameters named to_out)", type(unet).__name__)
    for p in params:
        p.requires_grad_(True)
    return params


@contextmanager
def injected(unet, control: torch.Tensor, scale: float):
    """Within the block, every call of `unet` adds the cross-normalised control to the hidden state that leaves
    its first down block (the block's skips are untouched)."""
    def hook(module, args, out):
        h, skips = out
        c = F.adaptive_avg_pool2d(control, h.shape[-2:]).to(h)
        return h + scale * cross_normalize(c, h), skips

    handle = unet.down_blocks[0].register_forward_hook(hook)
    try:
        yield unet
    finally:
        handle.remove()


def controlnext_unet(unet, net: ControlNeXt, z_t: torch.Tensor, t, c_t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """eps_theta(z_t, t, c_t, c_i): the locked UNet with ControlNeXt's control injected once."""
    t = torch.as_tensor(t, device=z_t.device)
    control = net(cond, t if t.ndim else t.expand(z_t.shape[0]))
    with injected(unet, control, net.scale):
        return unet(z_t, t, c_t).sample


@dataclass(frozen=True)
class CrossNormConfig:
    """The paper's ControlNet (official hint encoder, full copy and connections) with cross-normalised outputs."""
    design: ClassVar[str] = "controlnet_crossnorm"
    factor: int = 1
    cond_channels: int = 3
    scale: float = 0.35           # s, ControlNeXt's for sparse conditions

    def __post_init__(self):
        check_positive("scale", self.scale)
        ControlNetConfig(factor=self.factor, cond_channels=self.cond_channels)     # the same checks

    def build(self, unet, num_train_timesteps: int = 1000) -> "CrossNormControlNet":
        return CrossNormControlNet(unet, self, num_train_timesteps)


class CrossNormControlNet(ControlNet):
    """A ControlNet whose 13 residuals enter by cross normalisation (module docstring): r_i <- s * cn(r_i, h_i),
    h_i the locked UNet's own feature at connection i."""

    def __init__(self, unet, cfg: CrossNormConfig = CrossNormConfig(), num_train_timesteps: int = 1000):
        super().__init__(unet, ControlNetConfig(factor=cfg.factor, cond_channels=cfg.cond_channels),
                         num_train_timesteps)
        self.scale = cfg.scale
        self._locked = (unet,)           # it reads the locked features: a reference to the UNet, not a submodule

    def out_conv(self, channels: int) -> nn.Conv2d:
        return nn.Conv2d(channels, channels, kernel_size=1)          # ordinary 1x1 projections (default init)

    def forward(self, z_t: torch.Tensor, t, c_t: torch.Tensor, cond: torch.Tensor) -> Control:
        control = super().forward(z_t, t, c_t, cond)
        t = check_timesteps("t", t, z_t.shape[0], self.num_train_timesteps).to(z_t.device)
        with torch.no_grad():
            locked = self._locked[0]
            h_skips, h_mid = encoder_features(locked, locked.conv_in(z_t), t, c_t)
        s = self.scale
        return Control(tuple(s * cross_normalize(r, h) for r, h in zip(control.down, h_skips)),
                       s * cross_normalize(control.mid, h_mid))

    def diffusers_model(self, unet):
        fail("net", "a ControlNet whose residuals enter through zero convs (diffusers' ControlNetModel)",
             "cross-normalised residuals")
