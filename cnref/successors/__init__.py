"""ControlNet's successors, over the same locked base and the same control protocol (`cnref.paper.control.Design`),
and the options other papers lend the paper's ControlNet. Each design is one module: its config (a frozen
dataclass naming its `design`, with the condition's `factor` and `cond_channels`, whose `build(unet)` makes the
module) and its module, which answers `eps`, `once`, `trainable` and `diffusers_model`.

| design                     | paper                   | where the control enters                   | per denoising step |
|----------------------------|-------------------------|--------------------------------------------|--------------------|
| `controlnet`               | Zhang et al. 2023       | 13 skip/middle residuals (zero convs)      | yes                |
| `t2i_adapter`              | Mou et al. 2023         | each encoder level's output                | no (once)          |
| `controlnet_xs`            | Zavadski et al. 2024    | every layer, both directions (zero convs)  | yes                |
| `controlnext`              | Peng et al. 2024        | once, after the first level (cross norm)   | yes                |
| `controlnet_crossnorm`     | ControlNeXt's injection | ControlNet's 13 residuals, cross-normalised| yes                |
| `controlnet_base_embedder` | CtrLoRA's embedder      | ControlNet's, E = the base's first layers  | yes                |

May import cnref.paper and the shared modules below it (checks), never the mini model or anything above.
"""
from __future__ import annotations

from dataclasses import fields

from ..checks import check_choice
from ..paper.controlnet import ControlNetConfig
from .controlnet_xs import ControlNetXSConfig
from .controlnext import ControlNeXtConfig, CrossNormConfig
from .ctrlora import BaseEmbedderConfig
from .t2i_adapter import T2IAdapterConfig

DesignConfig = (ControlNetConfig | T2IAdapterConfig | ControlNetXSConfig | ControlNeXtConfig | CrossNormConfig
                | BaseEmbedderConfig)
DESIGNS: dict[str, type] = {c.design: c for c in (ControlNetConfig, T2IAdapterConfig, ControlNetXSConfig,
                                                   ControlNeXtConfig, CrossNormConfig, BaseEmbedderConfig)}


def design_config(design: str, like=None, **options) -> DesignConfig:
    """The config of `design` with the condition (factor, cond_channels) of the config `like`, and `options`."""
    check_choice("design", design, set(DESIGNS))
    cls = DESIGNS[design]
    names = {f.name for f in fields(cls)}
    shared = {k: getattr(like, k) for k in ("factor", "cond_channels") if like is not None and k in names}
    return cls(**{**shared, **options})
