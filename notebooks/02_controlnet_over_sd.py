# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The ControlNet over a Stable-Diffusion-shaped UNet
#
# **Device and time:** CPU, under 30 s. Smoke mode uses SD1.5's topology at width 8; full mode at width 32
# (SD1.5 is width 320: same blocks, same 13 connections).
#
# The trainable copy is a copy of the locked UNet's encoder: `conv_in`, the time embedding, the 11 encoder
# layers (4 resolutions x (2 layers + a downsampler), the last without a downsampler) and the middle block. The
# hint encoder's output is added to the copy's `conv_in` features. The UNet's decoder takes 12 skips: `conv_in`'s
# output and the 11 layers' outputs; a zero conv follows each of the 12 and the middle block, 13 connections. Code: `cnref.paper.controlnet.ControlNet`, `cnref.paper.control`.

# %%
import os

import torch
from diffusers import ControlNetModel

from cnref.mini.base import sd15_unet
from cnref.paper.control import controlled_unet
from cnref.paper.controlnet import ControlNet, ControlNetConfig
from cnref.paper.hint import official_channels

SMOKE = os.environ.get("CNREF_SMOKE") == "1"
WIDTH = 8 if SMOKE else 32
torch.manual_seed(0)
unet = sd15_unet(width=WIDTH, cross_attention_dim=16, sample_size=16, heads=2, norm_groups=4).eval()
net = ControlNet(unet, ControlNetConfig(factor=8)).eval()     # SD's 8x hint encoder: 128 px -> 16 latents
print(f"locked UNet: {sum(p.numel() for p in unet.parameters()) / 1e6:.2f}M params, "
      f"ControlNet: {sum(p.numel() for p in net.parameters()) / 1e6:.2f}M params")

# %% [markdown]
# ## The code: the hint encoder, the forward pass, and the residuals entering the locked UNet
# The condition image $c_i$ becomes a feature map $c_f = \mathcal{E}(c_i)$ at the latents' size (the official
# encoder: 3x3 convs with SiLU, stride 2 per halving, its last conv a zero conv $Z_1$); it is added to the
# copy's first features, the copy runs as the UNet's encoder does, and each of its 13 outputs leaves through
# its own zero conv $Z_2$. The locked UNet adds them to its decoder's skips and middle block.

# %%
from cnref.paper.hint import OfficialHintEncoder
from cnref.views.notebook import listing, show_reading

listing(OfficialHintEncoder, ControlNet.forward, controlled_unet)

# %% [markdown]
# ## Eq. 2 at initialisation: the controlled UNet computes exactly the locked UNet

# %%
z_t, t, c_t, cond = torch.randn(2, 4, 16, 16), torch.tensor([10, 900]), torch.randn(2, 7, 16), torch.rand(2, 3, 128, 128)
with torch.no_grad():
    control = net(z_t, t, c_t, cond)
    print("eps_c == eps exactly:", torch.equal(controlled_unet(unet, z_t, t, c_t, control), unet(z_t, t, c_t).sample))

# %% [markdown]
# ## The 13 connections and their shapes
# One residual per decoder skip (`conv_in`'s output and the 11 encoder layers', highest resolution first) and one
# for the middle block. $h_i$ is the size each has over SD's real 64x64 latents (ours are 16x16 here; the ratios
# are the same). Notebook 03 puts per-connection scales on these 13 (guess mode, the resolution weighting).

# %%
sd_sizes = [r.shape[-1] * 4 for r in control.residuals]
print(f"{'i':>2} {'where':8} {'shape here':>16} {'h_i (SD)':>8}")
for i, r in enumerate(control.residuals):
    where = "middle" if i == 12 else f"skip {i}"
    print(f"{i:>2} {where:8} {str(tuple(r.shape[1:])):>16} {sd_sizes[i]:>8}")

# %% [markdown]
# ## Same numbers as diffusers' `ControlNetModel`
# With the zero convs set to random values (so the residuals are not trivially zero) and the same weights,
# cnref's independently written forward matches `ControlNetModel.from_unet`.

# %%
ref = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=official_channels(8)).eval()
with torch.no_grad():
    for z in [ref.controlnet_cond_embedding.conv_out, *ref.controlnet_down_blocks, ref.controlnet_mid_block]:
        z.weight.normal_(0, 0.1); z.bias.normal_(0, 0.1)
    net.load_state_dict(ref.state_dict())
    ours = net(z_t, t, c_t, cond)
    down, mid = ref(z_t, t, c_t, cond, return_dict=False)
    diffs = [(a - b).abs().max().item() for a, b in zip(ours.residuals, (*down, mid))]
    eps_diff = (controlled_unet(unet, z_t, t, c_t, ours)
                - unet(z_t, t, c_t, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample).abs().max()
print(f"max |residual diff| over 13 connections: {max(diffs):.2e}; max |eps diff|: {eps_diff:.2e}")

# %% [markdown]
# ## A trap: a middle-only control in diffusers
# `UNet2DConditionModel` adds `mid_block_additional_residual` only when the down residuals are given too.
# cnref's `mid_only` ControlNet therefore passes exact zeros for the 12 skips, so its middle residual arrives.

# %%
mid_net = ControlNet(unet, ControlNetConfig(factor=8, connections="mid_only")).eval()
with torch.no_grad():
    mid_net.controlnet_mid_block.weight.normal_(0, 0.1)
    ctl = mid_net(z_t, t, c_t, cond)
    plain = unet(z_t, t, c_t).sample
    ignored = unet(z_t, t, c_t, mid_block_additional_residual=ctl.mid).sample
    print("diffusers, middle residual alone: changes eps by", (ignored - plain).abs().max().item())
    print("cnref controlled_unet:            changes eps by", (controlled_unet(unet, z_t, t, c_t, ctl) - plain).abs().max().item())

# %% [markdown]
# ## Your own UNet, from disk
# Any diffusers SD1.5-shaped UNet works the same way: here a small one saved with `save_pretrained` and loaded
# back with `from_pretrained`, as a real SD1.5 checkpoint's `unet` folder would be. The README's "own model"
# section trains it with Eq. 3 and saves the ControlNet as a diffusers `ControlNetModel`.

# %%
import tempfile

from diffusers import UNet2DConditionModel

with tempfile.TemporaryDirectory() as d:
    unet.save_pretrained(f"{d}/unet")
    mine = UNet2DConditionModel.from_pretrained(f"{d}/unet").eval().requires_grad_(False)
own = ControlNet(mine, ControlNetConfig(factor=8)).eval()
with torch.no_grad():
    print("loaded from disk; at initialisation eps_c == eps exactly:",
          torch.equal(controlled_unet(mine, z_t, t, c_t, own(z_t, t, c_t, cond)), mine(z_t, t, c_t).sample))

# %% [markdown]
# ## Reading

# %%
show_reading("""
**cnref's ControlNet is the paper's and diffusers' network.** At initialisation the controlled UNet's output
equals the locked UNet's exactly; with random zero convs and shared weights, cnref's independently written forward
matches diffusers' `ControlNetModel.from_unet` to {res:.1e} on the residuals and {eps:.1e} on eps. The
13 residuals join the decoder's skips at four resolutions and the middle block. One trap is real: diffusers ignores a middle residual given alone, so a middle-only
ControlNet needs explicit zeros for the twelve skips.

**What to take away.**
- A ControlNet is the UNet's encoder copied, a hint encoder on the condition, and 13 zero convs: one per skip
  connection of the decoder and one for the middle block.
- Its residuals are added to the locked UNet's skips; at initialisation they are exact zeros, so the output is
  the locked UNet's.
- It is diffusers' `ControlNetModel`, parameter for parameter: what you train here loads there.

**Exercise** (seconds, here or with `CNREF_SMOKE=1`): make the condition 4x the latents instead of 8x:
`ControlNetConfig(factor=4)` in the first cell, `cond` of 64 x 64, and `official_channels(4)` in the diffusers
cell. Does the match with diffusers still hold, and how many stride-2 stages does the hint encoder keep
(`net.controlnet_cond_embedding`)?
""", res=max(diffs), eps=float(eps_diff));
