"""The hint encoder E: c_f = E(c_i) maps an image-space condition to the UNet's feature space.

Two readings of the paper disagree, so both are here, by name, side by side:

- `official` (lllyasviel/ControlNet cldm.py; diffusers' ControlNetConditioningEmbedding, against which
  tests/test_controlnet.py checks it with the same weights): eight 3x3 convs with SiLU, channels
  3-16-16-32-32-96-96-256, stride 2 at 16->32, 32->96 and 96->256 (8x down), then a zero-initialised
  3x3 conv to the UNet width. Parameter names are diffusers', so export is a state-dict copy. For a factor f < 8 the channel list is cut to
  its first 1 + log2(f) entries (f = 1: 3 -> 16 -> width, no downsampling).
- `paper` (section 3.2 text): four 4x4 convs, ReLU, 16/32/64/128 channels, Gaussian init. Four
  stride-2 layers give 16x, not the 8x that 512 -> 64 needs; here the first log2(f) layers have
  stride 2 and the rest stride 1, so f is explicit. Gaussian init is He-normal, std = sqrt(2 / fan_in)
  (the text gives no std; a fixed small std vanishes through four ReLU layers). A zero 1x1 conv (Z1 of
  Eq. 2) maps the 128 channels to the UNet width.

Either output is added to the trainable copy's first-conv features (the official code adds, not concatenates).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import check_choice, check_power_of_two, check_tensor
from .zero_conv import zero_conv

VARIANTS = {"official", "paper"}
OFFICIAL_CHANNELS = (16, 32, 96, 256)
PAPER_CHANNELS = (16, 32, 64, 128)


def _log2_factor(factor: int, max_factor: int) -> int:
    check_power_of_two("factor", factor, max_factor)
    return factor.bit_length() - 1


def official_channels(factor: int) -> tuple[int, ...]:
    return OFFICIAL_CHANNELS[: 1 + _log2_factor(factor, 8)]


class OfficialHintEncoder(nn.Module):
    """E of the official code: c_f = Z1(SiLU(... SiLU(conv_in(c_i)))), each stage a 3x3 conv at its width
    then a 3x3 stride-2 conv to the next (one per factor of 2), Z1 a zero-initialised 3x3 conv."""
    variant = "official"

    def __init__(self, out_channels: int, factor: int = 8, cond_channels: int = 3):
        super().__init__()
        chans = official_channels(factor)
        self.conv_in = nn.Conv2d(cond_channels, chans[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            self.blocks.append(nn.Conv2d(c_in, c_in, kernel_size=3, padding=1))
            self.blocks.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, stride=2))   # 2x down
        self.conv_out = nn.Conv2d(chans[-1], out_channels, kernel_size=3, padding=1)       # Z1 of Eq. 2
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.factor, self.cond_channels = factor, cond_channels

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        check_tensor("cond", c, ndim=4, channels=self.cond_channels)
        h = F.silu(self.conv_in(c))
        for conv in self.blocks:
            h = F.silu(conv(h))
        return self.conv_out(h)


class PaperHintEncoder(nn.Module):
    variant = "paper"

    def __init__(self, out_channels: int, factor: int = 16, cond_channels: int = 3):
        super().__init__()
        n_down = _log2_factor(factor, 16)
        chans = (cond_channels,) + PAPER_CHANNELS
        self.convs = nn.ModuleList(
            nn.Conv2d(chans[k], chans[k + 1], kernel_size=4, stride=2 if k < n_down else 1,
                      padding=1 if k < n_down else 0) for k in range(4))
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        self.conv_out = zero_conv(PAPER_CHANNELS[-1], out_channels)
        self.factor, self.cond_channels = factor, cond_channels

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        check_tensor("cond", c, ndim=4, channels=self.cond_channels)
        for conv in self.convs:
            if conv.stride[0] == 1:     # 'same' padding for an even kernel: one more on the far side
                c = F.pad(c, (1, 2, 1, 2))
            c = torch.relu(conv(c))
        return self.conv_out(c)


def hint_encoder(variant: str, out_channels: int, factor: int, cond_channels: int = 3) -> nn.Module:
    """E: (B, cond_channels, H*factor, W*factor) -> (B, out_channels, H, W), last layer zero."""
    check_choice("hint", variant, VARIANTS)
    cls = OfficialHintEncoder if variant == "official" else PaperHintEncoder
    return cls(out_channels, factor, cond_channels)
