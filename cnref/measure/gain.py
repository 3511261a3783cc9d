"""Residual gain: is a ControlNet's trainable copy ready before its images follow the condition?

Before the jump of Fig. 4 the residuals are small. If the copy already computes where the disc is and only the
residuals' size keeps the locked decoder from following, sampling the same weights with every residual
multiplied by a gain g,

    r_i -> g r_i  for the 13 residuals r_i = Z2_i(F_copy_i)   (the uniform control strength of Sec. 3.4),

places the disc; if the copy has not learned it yet, amplification adds noise. The gain is applied by scaling
each output zero conv Z2 (weight and bias) by g: a conv is linear, so it then outputs exactly g times what it did,
and every path that runs the ControlNet (sampling, the condition-use measure) sees the amplified residuals with
no change to it. Scaling by a power of two is exact in floating point, so g = 1, 2, 4 give bit for bit what
strengths 1, 2, 4 give, and g = 1 the ordinary sample.
"""
from __future__ import annotations

import copy

import torch

from ..mini.metrics import fidelity_fn, summarize
from ..mini.presets import ControlNetTrainConfig
from ..mini.validation import validation_images, validation_inputs
from ..mini.use import condition_use
from ..paper.controlnet import ControlNet

GAINS = (1.0, 2.0, 4.0)


def amplified(net: ControlNet, gain: float) -> ControlNet:
    """A copy of `net` whose 13 residuals are `gain` times its own (its output zero convs Z2 scaled; Z1 and the copy
    untouched). `net` itself is left as it is."""
    out = copy.deepcopy(net)
    with torch.no_grad():
        for z in out.zero_convs()[1:]:          # [0] is Z1, the hint encoder's last conv: its scale is not the residuals'
            z.weight.mul_(gain)
            z.bias.mul_(gain)
    return out.eval()


@torch.no_grad()
def gain_rows(base, net: ControlNet, cfg: ControlNetTrainConfig, gains=GAINS
              ) -> tuple[dict[float, dict], dict[float, torch.Tensor]]:
    """For each gain: the run's validation (its batch, prompt, sampler and sampler seed, so g = 1 is the run's own
    last validation) of the amplified ControlNet, its condition fidelity and its condition use (`cnref.mini.use`);
    and the validation's images, in [-1, 1]."""
    vb, use = validation_inputs(base, cfg)
    fidelity, _ = fidelity_fn(cfg.data)
    rows, images = {}, {}
    for g in gains:
        a = amplified(net, g)
        images[g] = validation_images(base, a, vb, cfg.protocol, cfg.seed)
        rows[g] = {**summarize(fidelity(images[g], vb)), **condition_use(a, base.unet, use)}
    return rows, images
