"""diffusers interop: a cnref ControlNet <-> diffusers' `ControlNetModel`, and any design saved in diffusers' format.

The default ControlNet (official hint encoder, zero/gaussian init, full or mid-only connections) has the same
parameter names as `ControlNetModel`, so export is `from_unet` + a strict state-dict copy
(`ControlNet.diffusers_model`). `save_pretrained` writes any design of the control protocol where diffusers has
its class (`Design.diffusers_model`): a ControlNet as `ControlNetModel`, a T2I-Adapter as `T2IAdapter`,
ControlNet-XS as `UNetControlNetXSModel` (the locked base and its control in one model, on the lifted 4-channel
UNet, which is how cnref runs it). ControlNeXt has no diffusers class (its official code ships a modified UNet),
the paper's hint encoder and lite have no counterpart: they refuse.
"""
from __future__ import annotations

from pathlib import Path

from diffusers import ControlNetModel

from ..checks import fail
from .control import Design
from .controlnet import ControlNet, ControlNetConfig
from .hint import OFFICIAL_CHANNELS


def from_diffusers(model, unet) -> ControlNet:
    """A cnref ControlNet (official hint, full connections) with a `ControlNetModel`'s weights."""
    chans = tuple(model.config.conditioning_embedding_out_channels)
    if chans != OFFICIAL_CHANNELS[: len(chans)]:
        fail("model.config.conditioning_embedding_out_channels", f"a prefix of {OFFICIAL_CHANNELS}", chans)
    if model.config.global_pool_conditions:
        fail("model.config.global_pool_conditions", "False", True)
    cfg = ControlNetConfig(hint="official", factor=2 ** (len(chans) - 1),
                           cond_channels=model.config.conditioning_channels)
    net = ControlNet(unet, cfg)
    net.load_state_dict(model.state_dict(), strict=True)
    return net


def save_pretrained(net: Design, unet, path: str | Path) -> None:
    """A trained design saved with diffusers' `save_pretrained`, in the diffusers class it corresponds to."""
    net.diffusers_model(unet).save_pretrained(str(path))


def load_pretrained(path: str | Path, unet) -> ControlNet:
    return from_diffusers(ControlNetModel.from_pretrained(str(path)), unet)
