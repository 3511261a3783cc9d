"""ControlNet over a UNet, drawn from the model itself: one row per connection (its resolution and width read off
the UNet), the trainable parts beside the locked ones, and the parameter counts of each part."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ..paper.controlnet import ControlNet, skip_shapes

TRAINABLE, LOCKED, ZERO = "#cfe2f3", "#e6e6e6", "#fde9c9"


def _box(ax, x, y, w, h, text, colour, size=7):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02", fc=colour, ec="0.3", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=size)


def _arrow(ax, a, b, **kw):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=8, lw=0.8, color=kw.pop("color", "0.2"), **kw))


def count(module) -> str:
    n = sum(p.numel() for p in module.parameters())
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def draw_controlnet(net: ControlNet, unet, size: int):
    """The 13 connections of `net` over `unet` (sample size `size`): for each encoder skip and the middle block, the
    locked encoder's block (grey), the trainable copy's (blue), its zero conv Z2 (orange) and where the residual
    joins the locked decoder; the condition entering through the hint encoder E and Z1 at the top."""
    shapes = skip_shapes(unet) + [(unet.config.block_out_channels[-1], 2 ** (len(unet.config.block_out_channels) - 1))]
    rows = len(shapes)
    fig, ax = plt.subplots(figsize=(10, 0.42 * (rows + 3)))
    xs = {"enc": 0.0, "copy": 2.4, "zero": 4.3, "dec": 6.2}
    y0 = rows + 1.2
    _box(ax, xs["copy"], y0 + 1.0, 1.6, 0.6, f"condition $c_i$, {size * net.cfg.factor}x{size * net.cfg.factor}", "white")
    _box(ax, xs["copy"], y0, 1.6, 0.6, f"hint encoder E, Z1\n({count(net.controlnet_cond_embedding)})", ZERO)
    _box(ax, xs["enc"], y0, 1.6, 0.6, "$z_t$, $t$, text $c_t$", "white")
    _arrow(ax, (xs["copy"], y0 + 0.7), (xs["copy"], y0 + 0.31))
    _arrow(ax, (xs["copy"], y0 - 0.31), (xs["copy"], rows + 0.32))
    _arrow(ax, (xs["enc"], y0 - 0.31), (xs["enc"], rows + 0.32))
    _arrow(ax, (xs["enc"] + 0.8, y0 - 0.1), (xs["copy"] - 0.8, rows + 0.25))
    for i, (c, d) in enumerate(shapes):
        y = rows - i
        res = f"{size // d}x{size // d}, {c} ch"
        name = "middle block" if i == rows - 1 else f"skip {i}"
        _box(ax, xs["enc"], y, 1.6, 0.62, f"locked {name}\n{res}", LOCKED, 6.5)
        _box(ax, xs["copy"], y, 1.6, 0.62, f"trainable copy\n{res}", TRAINABLE, 6.5)
        _box(ax, xs["zero"], y, 1.2, 0.62, f"Z2 #{i}\n1x1, {c}->{c}", ZERO, 6.5)
        _box(ax, xs["dec"], y, 1.6, 0.62, "locked middle\n(+ residual)" if i == rows - 1 else
             f"locked decoder\nskip {i} + residual", LOCKED, 6.5)
        _arrow(ax, (xs["copy"] + 0.8, y), (xs["zero"] - 0.6, y))
        _arrow(ax, (xs["zero"] + 0.6, y), (xs["dec"] - 0.8, y))
    copy = sum(p.numel() for n, p in net.named_parameters() if not n.startswith(("controlnet_down", "controlnet_mid",
                                                                               "controlnet_cond")))
    zeros = sum(p.numel() for m in net.zero_convs()[1:] for p in m.parameters())
    ax.set_title(f"ControlNet over the UNet, drawn from the model: {rows} connections, each residual added to the "
                 f"locked skip it sits beside.\nTrainable (blue, orange): the copy {copy / 1e6:.2f}M, E and Z1 "
                 f"{count(net.controlnet_cond_embedding)}, the {rows} Z2 {zeros / 1e3:.1f}k parameters; locked (grey): "
                 f"the UNet, {count(unet)}", fontsize=8, loc="left")
    for key, label in (("enc", "locked encoder"), ("copy", "trainable copy"), ("zero", "zero convs"),
                       ("dec", "locked decoder")):
        ax.text(xs[key], 0.25, label, ha="center", fontsize=8, weight="bold")
    ax.set_xlim(-1.0, 7.2)
    ax.set_ylim(0, y0 + 1.4)
    ax.set_axis_off()
    fig.tight_layout()
    return fig
