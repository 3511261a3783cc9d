"""The ControlNet over a Stable-Diffusion-shaped UNet (paper section 3.2, Fig. 3).

The trainable copy is a copy of the locked UNet's encoder: conv_in, time embedding, every down block
and the middle block (for SD: 12 encoder blocks at 4 resolutions + the middle block). The hint
encoder's output c_f is added to the copy's conv_in features (Eq. 2's x + Z(c; Θz1), the hint encoder's
last zero conv playing Z1). One 1x1 zero conv (Z2) follows each of the 12 skip outputs and the middle
block: 13 residuals that the locked decoder adds to its skips and middle features.

Attribute names follow diffusers' `ControlNetModel`, so the default variant exports by a state-dict copy.
Options (`ControlNetConfig`), the paper's own:
- hint `official` | `paper` (cnref.paper.hint), with a resolution factor (condition size / sample size);
- connections `full` | `mid_only` (small-scale training: only the middle residual; the 12 skip
  residuals are exact zeros, so the middle one really reaches the UNet);
- init `zero` | `gaussian` (Fig. 8b: every zero conv, Z1 and the 13 Z2, drawn from N(0, std^2)) | `gaussian_z1`
  (Z1 drawn, the 13 Z2 zero) | `gaussian_z2` (the 13 Z2 drawn, Z1 zero): the condition passes Z1 and Z2 in series,
  so with both zero its effect starts as a product of two zeros;
- lite (Fig. 8c, ControlNet-lite): each trainable block replaced by one 3x3 conv + SiLU with the
  block's output shape; no timestep or text input reaches it.
Options from other papers are subclasses beside the designs they come from (cnref.successors: ControlNeXt's
cross normalisation on the 13 connections, CtrLoRA's pretrained condition embedder); `hint_encoder` and
`out_conv` are the two places they change.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.utils.checkpoint
from diffusers import ControlNetModel
from torch import nn
from torch.nn import functional as F

from ..checks import check_choice, check_positive, check_power_of_two, check_tensor, check_timesteps, fail
from .control import Control, Design, controlled_unet, repeat_rows
from .hint import hint_encoder, official_channels
from .zero_conv import gaussian_, zero_conv


INITS = ("zero", "gaussian", "gaussian_z1", "gaussian_z2")   # which zero convs start Gaussian: none, all, Z1, Z2


@dataclass(frozen=True)
class ControlNetConfig:
    """The paper's ControlNet (`ControlNet`)."""
    design: ClassVar[str] = "controlnet"
    hint: str = "official"        # "official" | "paper" (cnref.paper.hint)
    factor: int = 1               # condition size / sample size (SD: 512 / 64 = 8)
    cond_channels: int = 3
    connections: str = "full"     # "full" | "mid_only"
    init: str = "zero"            # INITS
    gaussian_std: float = 0.02
    lite: bool = False

    def __post_init__(self):
        check_choice("hint", self.hint, {"official", "paper"})
        check_choice("connections", self.connections, {"full", "mid_only"})
        check_choice("init", self.init, INITS)
        check_positive("factor", self.factor, integer=True)
        check_positive("cond_channels", self.cond_channels, integer=True)
        check_positive("gaussian_std", self.gaussian_std)
        top = {"official": 8, "paper": 16}[self.hint]
        check_power_of_two("factor", self.factor, top, f"the {self.hint} hint encoder's stride-2 stages")

    def build(self, unet, num_train_timesteps: int = 1000) -> "ControlNet":
        return ControlNet(unet, self, num_train_timesteps)


def skip_shapes(unet) -> list[tuple[int, int]]:
    """(channels, downsampling) of the 12 encoder skips, in the order the UNet produces them."""
    chans = unet.config.block_out_channels
    shapes = [(chans[0], 1)]
    for i, c in enumerate(chans):
        shapes += [(c, 2 ** i)] * unet.config.layers_per_block
        if i < len(chans) - 1:
            shapes.append((c, 2 ** (i + 1)))
    return shapes


def check_servable(unet) -> None:
    """The UNets this ControlNet serves: SD1.x/2.x-shaped, whose only conditioning is t and the text. A UNet
    with class labels or added embeddings (SDXL's time_ids and pooled text) would get residuals computed
    without them: refused."""
    c = unet.config
    extra = {"class_embed_type": c.class_embed_type, "num_class_embeds": c.num_class_embeds,
             "addition_embed_type": c.addition_embed_type, "encoder_hid_dim": c.encoder_hid_dim}
    extra = {k: v for k, v in extra.items() if v is not None}
    if extra:
        fail("unet", "a UNet conditioned on t and text only (SD1.x/2.x-shaped)", f"a UNet with {extra}")


class ControlNet(Design):
    """F(x; Θ) + Z(F(x + Z(c; Θz1); Θc); Θz2) over every encoder block of the locked UNet (module docstring)."""
    residual = True

    def __init__(self, unet, cfg: ControlNetConfig = ControlNetConfig(), num_train_timesteps: int = 1000):
        super().__init__()
        check_servable(unet)
        self.cfg, self.num_train_timesteps = cfg, num_train_timesteps
        self.text_width = unet.config.cross_attention_dim
        self.in_channels = unet.config.in_channels
        width = unet.config.block_out_channels[0]
        self.conv_in = copy.deepcopy(unet.conv_in)
        self.controlnet_cond_embedding = self.hint_encoder(unet, width)
        shapes = skip_shapes(unet)
        if cfg.lite:
            # one conv per skip output, from the previous one, with the block's stride and width
            prev = [(width, 1)] + shapes[1:-1]
            self.lite_blocks = nn.ModuleList(
                nn.Conv2d(pc, c, 3, stride=d // pd, padding=1) for (pc, pd), (c, d) in zip(prev, shapes[1:]))
            self.lite_mid = nn.Conv2d(shapes[-1][0], shapes[-1][0], 3, padding=1)
        else:
            self.time_proj = copy.deepcopy(unet.time_proj)
            self.time_embedding = copy.deepcopy(unet.time_embedding)
            self.down_blocks = copy.deepcopy(unet.down_blocks)
            self.mid_block = copy.deepcopy(unet.mid_block)
        if cfg.connections == "full":
            self.controlnet_down_blocks = nn.ModuleList(self.out_conv(c) for c, _ in shapes)
        self.controlnet_mid_block = self.out_conv(shapes[-1][0])
        z1, *z2 = self.zero_convs()
        for z in {"zero": [], "gaussian": [z1, *z2], "gaussian_z1": [z1], "gaussian_z2": z2}[cfg.init]:
            gaussian_(z, cfg.gaussian_std)
        self.requires_grad_(True)

    def hint_encoder(self, unet, width: int) -> nn.Module:
        """E, whose last layer is Z1 (cnref.paper.hint)."""
        return hint_encoder(self.cfg.hint, width, self.cfg.factor, self.cfg.cond_channels)

    def out_conv(self, channels: int) -> nn.Conv2d:
        """Z2, after each skip output and the middle block."""
        return zero_conv(channels)

    def zero_convs(self) -> list[nn.Conv2d]:
        """Z1 (the hint encoder's last conv) and the output zero convs Z2."""
        out = [self.controlnet_cond_embedding.conv_out]
        if self.cfg.connections == "full":
            out += list(self.controlnet_down_blocks)
        return out + [self.controlnet_mid_block]

    def forward(self, z_t: torch.Tensor, t, c_t: torch.Tensor, cond: torch.Tensor) -> Control:
        """The 13 residuals for the locked UNet, given noisy sample z_t, timestep t, text c_t, condition c_i."""
        dtype = self.conv_in.weight.dtype
        check_tensor("z_t", z_t, ndim=4, channels=self.in_channels, dtype=dtype)
        b, _, h, w = z_t.shape
        if b == 0:
            fail("z_t", "a batch of at least one sample", "an empty batch")
        check_tensor("cond", cond, ndim=4, batch=b, channels=self.cfg.cond_channels,
                     size=(h * self.cfg.factor, w * self.cfg.factor), dtype=dtype)
        check_tensor("c_t", c_t, ndim=3, batch=b, dtype=dtype)
        if c_t.shape[-1] != self.text_width:
            fail("c_t", f"text embeddings of width {self.text_width} (the UNet's cross_attention_dim)",
                 f"width {c_t.shape[-1]} (shape {tuple(c_t.shape)})")
        t = check_timesteps("t", t, b, self.num_train_timesteps).to(z_t.device)
        x = self.conv_in(z_t) + self.controlnet_cond_embedding(cond)   # x + Z(c; Θz1), c = E(c_i)
        skips, h_mid = self._lite(x) if self.cfg.lite else self._copy(x, t, c_t)
        if self.cfg.connections == "full":
            down = tuple(z(s) for z, s in zip(self.controlnet_down_blocks, skips))
        else:
            down = tuple(torch.zeros_like(s) for s in skips)
        return Control(down, self.controlnet_mid_block(h_mid))

    def eps(self, unet, z_t: torch.Tensor, t, c_t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """eps_theta(z_t, t, c_t, c_i): the locked UNet with this ControlNet's 13 residuals added."""
        return controlled_unet(unet, z_t, t, c_t, self(z_t, t, c_t, repeat_rows(cond, z_t.shape[0])))

    def diffusers_model(self, unet) -> ControlNetModel:
        """A `diffusers.ControlNetModel` computing exactly what this ControlNet computes over `unet`: the same
        parameter names, so a strict state-dict copy (a mid-only ControlNet exports with zero skip convs, which
        output exact zeros). The paper's hint encoder and lite have no diffusers counterpart and refuse."""
        if self.cfg.lite:
            fail("net", "a ControlNet with a full trainable copy (diffusers has no ControlNet-lite)", "lite=True")
        if self.cfg.hint != "official":
            fail("net.cfg.hint", "'official' (diffusers has only the official hint encoder)", repr(self.cfg.hint))
        model = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=official_channels(self.cfg.factor),
                                          conditioning_channels=self.cfg.cond_channels)
        state = dict(self.state_dict())
        if self.cfg.connections == "mid_only":
            for k, (c, _) in enumerate(skip_shapes(unet)):
                z = zero_conv(c)
                state[f"controlnet_down_blocks.{k}.weight"], state[f"controlnet_down_blocks.{k}.bias"] = z.weight, z.bias
        model.load_state_dict(state, strict=True)
        return model.to(next(self.parameters()).dtype)

    def _copy(self, h, t, c_t):
        """F(.; Θc): the trainable copy of the UNet encoder and middle block."""
        return encoder_features(self, h, t, c_t)

    def _lite(self, h):
        skips = [h]
        for conv in self.lite_blocks:
            h = F.silu(conv(h))
            skips.append(h)
        return tuple(skips), F.silu(self.lite_mid(h))


def encoder_features(m, h: torch.Tensor, t: torch.Tensor, c_t: torch.Tensor):
    """The 12 skip features and the middle feature of a UNet-shaped encoder `m` (the locked UNet, or the
    ControlNet's trainable copy: both have time_proj, time_embedding, down_blocks, mid_block), given h, the
    output of its first conv."""
    emb = m.time_embedding(m.time_proj(t).to(h.dtype))
    skips = (h,)
    for block in m.down_blocks:
        if getattr(block, "has_cross_attention", False):
            h, res = block(hidden_states=h, temb=emb, encoder_hidden_states=c_t)
        else:
            h, res = block(hidden_states=h, temb=emb)
        skips += res
    if getattr(m.mid_block, "has_cross_attention", False):
        h = m.mid_block(h, emb, encoder_hidden_states=c_t)
    else:
        h = m.mid_block(h, emb)
    return skips, h


def set_gradient_checkpointing(module: nn.Module, enable: bool = True) -> nn.Module:
    """Activation checkpointing in every diffusers block inside `module` (a ControlNet's trainable copy, or
    the locked UNet, whose decoder the loss backpropagates through to reach the residuals): activations
    are recomputed in the backward pass instead of kept, trading about one more forward for memory.
    The same switch diffusers' `enable_gradient_checkpointing` flips, for modules that are not ModelMixins."""
    def ckpt(block, *args):
        return torch.utils.checkpoint.checkpoint(block.__call__, *args, use_reentrant=False)
    blocks = [m for m in module.modules() if hasattr(m, "gradient_checkpointing")]
    if not blocks:
        fail("module", "a module with diffusers blocks (attribute gradient_checkpointing)", type(module).__name__)
    for m in blocks:
        m._gradient_checkpointing_func, m.gradient_checkpointing = ckpt, enable
    return module


def unlock_decoder(unet) -> list[nn.Parameter]:
    """Large-scale training: make the locked UNet's decoder trainable too; returns its parameters."""
    params = []
    for m in (unet.up_blocks, unet.conv_norm_out, unet.conv_out):
        if m is not None:
            m.requires_grad_(True)
            params += list(m.parameters())
    return params
