"""diffusers interop: a cnref ControlNet <-> diffusers' `ControlNetModel`, and a pipeline to run it in.

The default variant (official hint encoder, zero/gaussian init, full or mid-only connections) has the
same parameter names as `ControlNetModel`, so export is `from_unet` + a strict state-dict copy. A
mid-only ControlNet exports with zero skip convs, which output exact zeros: the same model. The
`paper` hint encoder and `lite` have no diffusers counterpart and refuse to export.

`export` writes any control module of `cnref.controls` in diffusers' format where diffusers has its class: a
ControlNet as `ControlNetModel`, a T2I-Adapter as `T2IAdapter` (the module itself), ControlNet-XS as
`UNetControlNetXSModel` (the locked base and its control in one model, on the lifted 4-channel UNet, which is how
cnref runs it). ControlNeXt has no diffusers class (its official code ships a modified UNet), so it refuses.
"""
from __future__ import annotations

from pathlib import Path

from diffusers import ControlNetModel

from .checks import fail
from .controls import ControlNetXS, ControlNeXt, T2IAdapterControl
from .controlnet import ControlNet, ControlNetConfig, skip_shapes
from .hint import OFFICIAL_CHANNELS, official_channels
from .zero_conv import zero_conv


def to_diffusers(net: ControlNet, unet):
    """A `diffusers.ControlNetModel` computing exactly what `net` computes over `unet`."""
    if net.cfg.lite:
        fail("net", "a ControlNet with a full trainable copy (diffusers has no ControlNet-lite)", "lite=True")
    if net.cfg.injection != "zero":
        fail("net.cfg.injection", "'zero' (diffusers' ControlNetModel adds its residuals through zero convs)",
             repr(net.cfg.injection))
    if net.cfg.hint != "official":
        fail("net.cfg.hint", "'official' (diffusers has only the official hint encoder)", repr(net.cfg.hint))
    model = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=official_channels(net.cfg.factor),
                                      conditioning_channels=net.cfg.cond_channels)
    state = dict(net.state_dict())
    if net.cfg.connections == "mid_only":
        for k, (c, _) in enumerate(skip_shapes(unet)):
            z = zero_conv(c)
            state[f"controlnet_down_blocks.{k}.weight"], state[f"controlnet_down_blocks.{k}.bias"] = z.weight, z.bias
    model.load_state_dict(state, strict=True)
    return model.to(next(net.parameters()).dtype)


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


def save_pretrained(net: ControlNet, unet, path: str | Path) -> None:
    to_diffusers(net, unet).save_pretrained(str(path))


def load_pretrained(path: str | Path, unet) -> ControlNet:
    return from_diffusers(ControlNetModel.from_pretrained(str(path)), unet)


def export(net, unet, path: str | Path) -> None:
    """A trained control module of `cnref.controls` saved with diffusers' `save_pretrained` (module docstring)."""
    if isinstance(net, ControlNet):
        save_pretrained(net, unet, path)
    elif isinstance(net, T2IAdapterControl):
        net.adapter.save_pretrained(str(path))
    elif isinstance(net, ControlNetXS):
        net.model.save_pretrained(str(path))
    elif isinstance(net, ControlNeXt):
        fail("net", "a control module diffusers has a class for (ControlNeXt has none: its official code ships its "
             "own UNet; keep its state dict)", "ControlNeXt")
    else:
        fail("net", "a control module of cnref.controls", type(net).__name__)
