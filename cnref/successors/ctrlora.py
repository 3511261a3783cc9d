"""CtrLoRA's pretrained condition embedder (Xu et al. 2024, "CtrLoRA: An Extensible and Efficient Framework for
Controllable Image Generation"), borrowed for the paper's ControlNet (the why-sudden study's `hint_embedder`
ablation): instead of a randomly initialised hint encoder E, the locked base's own first layers read the
condition as a clean image at t = 0, and a zero conv Z1 hands their features to the trainable copy.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..checks import check_positive, check_tensor, fail
from ..paper.controlnet import ControlNet, ControlNetConfig


class BaseHintEncoder(nn.Module):
    """E from the locked base's own first layers (CtrLoRA's idea, a pretrained condition embedder, in pixel space):
    c_f = Z1(R(conv_in(2 c_i - 1), emb(t = 0))), conv_in and the first ResNet block R copied from the base, which
    read a clean image at t = 0; Z1 a zero-initialised 3x3 conv. `trainable=False` keeps the copies frozen;
    `pretrained=False` draws them afresh, which separates the base's weights from its layers and input scaling.
    Conditions at the sample's resolution (factor 1) only: the base has no layers for larger inputs."""
    variant = "base"

    def __init__(self, unet, out_channels: int, cond_channels: int = 3, trainable: bool = True,
                 pretrained: bool = True):
        super().__init__()
        if cond_channels != unet.config.in_channels:
            fail("cond_channels", f"the base's input channels {unet.config.in_channels}", cond_channels)
        self.conv_in = copy.deepcopy(unet.conv_in)
        self.resnet = copy.deepcopy(unet.down_blocks[0].resnets[0])
        self.time_proj, self.time_embedding = copy.deepcopy(unet.time_proj), copy.deepcopy(unet.time_embedding)
        if not pretrained:
            # the same layers and input scaling, drawn afresh (PyTorch's default init): what pretraining adds
            for m in (*self.conv_in.modules(), *self.resnet.modules(), *self.time_embedding.modules()):
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        self.conv_out = nn.Conv2d(self.resnet.out_channels, out_channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.factor, self.cond_channels, self.trainable = 1, cond_channels, trainable

    def freeze(self) -> "BaseHintEncoder":
        """The copied base layers (and the t = 0 embedding, always) stop training; Z1 trains."""
        for m in (self.conv_in, self.resnet):
            m.requires_grad_(self.trainable)
        for m in (self.time_proj, self.time_embedding):
            m.requires_grad_(False)
        return self

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        check_tensor("cond", c, ndim=4, channels=self.cond_channels)
        t = torch.zeros(c.shape[0], device=c.device)
        emb = self.time_embedding(self.time_proj(t).to(c.dtype))
        return self.conv_out(self.resnet(self.conv_in(2 * c - 1), emb))



@dataclass(frozen=True)
class BaseEmbedderConfig:
    """The paper's ControlNet (full copy, zero convs) with `BaseHintEncoder` as E."""
    design: ClassVar[str] = "controlnet_base_embedder"
    factor: int = 1               # the base's layers take conditions at the sample's resolution only
    cond_channels: int = 3
    trainable: bool = True        # whether the copied base layers train (Z1 always does)
    pretrained: bool = True       # False: the same layers randomly initialised (the architecture without the weights)

    def __post_init__(self):
        check_positive("cond_channels", self.cond_channels, integer=True)
        if self.factor != 1:
            fail("factor", "1 (the base's first layers read conditions at the sample's size)", self.factor)

    def build(self, unet, num_train_timesteps: int = 1000) -> "BaseEmbedderControlNet":
        return BaseEmbedderControlNet(unet, self, num_train_timesteps)


class BaseEmbedderControlNet(ControlNet):
    """A ControlNet whose hint encoder is the locked base's first layers (`BaseHintEncoder`)."""

    def __init__(self, unet, cfg: BaseEmbedderConfig = BaseEmbedderConfig(), num_train_timesteps: int = 1000):
        self.embedder_cfg = cfg
        super().__init__(unet, ControlNetConfig(factor=1, cond_channels=cfg.cond_channels), num_train_timesteps)
        self.controlnet_cond_embedding.freeze()

    def hint_encoder(self, unet, width: int) -> nn.Module:
        c = self.embedder_cfg
        return BaseHintEncoder(unet, width, c.cond_channels, c.trainable, c.pretrained)

    def diffusers_model(self, unet):
        fail("net", "a ControlNet with the official hint encoder (diffusers' ControlNetModel)", "the base embedder")
