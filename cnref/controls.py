"""ControlNet and its successors behind one interface, so that one training loop, sampler and evaluation serve
them all over the same locked base:

- `make_control(unet, cfg)`: the trainable module a `ControlNetConfig` names (`kind`);
- `controlled_eps(net, unet, z_t, t, c_t, cond)`: eps_theta(z_t, t, c_t, c_i) under it;
- `once(net, cond)`: what of the control a generation computes once, before its first step: T2I-Adapter's
  features (they depend on the condition alone); for the others, the condition itself;
- `trainable(net)`: the parameters an optimiser gets.

| kind            | paper                       | where the control enters                   | per denoising step |
|-----------------|-----------------------------|--------------------------------------------|--------------------|
| `controlnet`    | Zhang et al. 2023           | 13 skip/middle residuals (zero convs)      | yes                |
| `t2i_adapter`   | Mou et al. 2023             | each encoder level's output                | no (once)          |
| `controlnet_xs` | Zavadski et al. 2024        | every layer, both directions (zero convs)  | yes                |
| `controlnext`   | Peng et al. 2024            | once, after the first level (cross norm)   | yes                |
"""
from __future__ import annotations

import torch
from torch import nn

from .checks import fail
from .control import controlled_unet
from .controlnet import ControlNet, ControlNetConfig
from .controlnet_xs import ControlNetXS
from .controlnext import ControlNeXt, controlnext_unet
from .t2i_adapter import adapted_unet, adapter_for

KINDS = ("controlnet", "t2i_adapter", "controlnet_xs", "controlnext")


class T2IAdapterControl(nn.Module):
    """diffusers' T2IAdapter for the locked UNet (cnref.t2i_adapter)."""

    def __init__(self, unet, cfg: ControlNetConfig):
        super().__init__()
        self.adapter = adapter_for(unet, cfg.cond_channels, cfg.factor)

    def forward(self, cond: torch.Tensor) -> list[torch.Tensor]:
        return self.adapter(cond)


SUCCESSORS = (T2IAdapterControl, ControlNetXS, ControlNeXt)     # what does not hand residuals to the UNet


def make_control(unet, cfg: ControlNetConfig, num_train_timesteps: int = 1000) -> nn.Module:
    if cfg.kind == "controlnet":
        return ControlNet(unet, cfg, num_train_timesteps)
    if cfg.kind == "t2i_adapter":
        return T2IAdapterControl(unet, cfg)
    if cfg.kind == "controlnet_xs":
        return ControlNetXS(unet, cfg.xs_size_ratio, cfg.cond_channels, cfg.factor)
    if cfg.kind == "controlnext":
        return ControlNeXt(unet, cfg.cond_channels, cfg.factor, scale=cfg.crossnorm_scale)
    fail("kind", f"one of {KINDS}", repr(cfg.kind))


def once(net: nn.Module, cond: torch.Tensor):
    """The condition as a generation hands it to every step: T2I-Adapter's features, computed once."""
    return net(cond) if isinstance(net, T2IAdapterControl) else cond


def controlled_eps(net: nn.Module, unet, z_t: torch.Tensor, t, c_t: torch.Tensor, cond) -> torch.Tensor:
    """eps_theta(z_t, t, c_t, c_i) of the locked `unet` under the control module `net`. For a T2I-Adapter `cond`
    may be its features already (`once`); conditions (or features) with fewer rows than z_t are repeated (CFG's
    two halves)."""
    if isinstance(net, T2IAdapterControl) and torch.is_tensor(cond):
        cond = net(cond)
    reps = z_t.shape[0] // (cond if torch.is_tensor(cond) else cond[0]).shape[0]
    if reps > 1:
        cond = cond.repeat(reps, 1, 1, 1) if torch.is_tensor(cond) else [f.repeat(reps, 1, 1, 1) for f in cond]
    if isinstance(net, ControlNet):
        return controlled_unet(unet, z_t, t, c_t, net(z_t, t, c_t, cond))
    if isinstance(net, T2IAdapterControl):
        return adapted_unet(unet, z_t, t, c_t, cond)
    if isinstance(net, ControlNetXS):
        return net(z_t, t, c_t, cond)
    if isinstance(net, ControlNeXt):
        return controlnext_unet(unet, net, z_t, t, c_t, cond)
    fail("net", f"a control module of cnref.controls ({', '.join(KINDS)})", type(net).__name__)


def trainable(net: nn.Module) -> list[nn.Parameter]:
    return [p for p in net.parameters() if p.requires_grad]
