"""What a ControlNet carries during training, measured cheaply at each validation (the sudden-convergence study).

Three explanations of the sudden jump make different predictions about these numbers:
- `gate`: per connection i (12 skips + middle), ||r_i|| / ||h_i||, the residual the ControlNet adds relative
  to the locked feature it is added to; ||W|| of each zero conv (Z1 and the 13 Z2); and ||dL/dW||, the last
  optimiser step's gradient reaching them. With Adam a weight moves by about lr per step whatever the
  gradient's size, so if the jump is "the gate opening", step x lr at the jump is about constant.
- `readout`: a ridge regression from a feature map's channels at each pixel to the condition's disc mask,
  fitted on half of a batch's conditions and scored (IoU at 0.5) on the other half. Applied to the trainable
  copy's features (before Z2) and to the residual that leaves through Z2, it tells whether the copy knows
  where the disc is before the locked decoder's samples follow it.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from ..paper.controlnet import ControlNet, encoder_features
from .base import MiniSD
from .metrics import iou

READOUT_LEVEL = 5        # the last skip of the second resolution level (half the sample's size)


@torch.no_grad()
def gate(net: ControlNet, unet, z_t: torch.Tensor, t: torch.Tensor, c_t: torch.Tensor, cond: torch.Tensor) -> dict:
    """||r_i|| / ||h_i|| per connection (mean over the batch), ||W|| and ||dL/dW|| of each zero conv."""
    skips, mid = encoder_features(unet, unet.conv_in(z_t), t, c_t)          # h_i: what the locked UNet adds to
    control = net(z_t, t, c_t, cond)
    h = [*skips, mid]
    ratio = [float((r.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1).clamp_min(1e-12)).mean())
             for r, x in zip(control.residuals, h)]
    zs = net.zero_convs()
    w = [float(z.weight.norm()) for z in zs]
    g = [float(z.weight.grad.norm()) if z.weight.grad is not None else None for z in zs]
    return {"ratio": [round(x, 6) for x in ratio], "w_norm": [round(x, 6) for x in w],
            "g_norm": [None if x is None else round(x, 9) for x in g]}


def ridge_readout(x: torch.Tensor, y: torch.Tensor, train: torch.Tensor, lam: float = 1e-3) -> float:
    """IoU on the held-out conditions of a per-pixel linear readout from features x (B, C, h, w) to masks
    y (B, 1, h, w): w = (X'X + lam I)^-1 X'y on the `train` conditions (standardised features + a bias)."""
    X = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1]).double()
    mu, sd = X[train].flatten(0, 1).mean(0), X[train].flatten(0, 1).std(0).clamp_min(1e-8)
    X = torch.cat([(X - mu) / sd, torch.ones(*X.shape[:2], 1, dtype=X.dtype)], -1)
    Y = y.reshape(y.shape[0], -1, 1).double()
    A, B = X[train].flatten(0, 1), Y[train].flatten(0, 1)
    w = torch.linalg.solve(A.T @ A + lam * len(A) * torch.eye(A.shape[1], dtype=A.dtype), A.T @ B)
    pred = (X[~train] @ w).reshape(-1, 1, *y.shape[-2:]) > 0.5
    return float(iou(pred, y[~train].bool()).mean())


def readable(net: ControlNet) -> bool:
    """Whether `readout` applies: a full trainable copy (not lite) whose skips all leave through Z2."""
    return not net.cfg.lite and net.cfg.connections == "full"


@torch.no_grad()
def readout(net: ControlNet, z_t: torch.Tensor, t: torch.Tensor, c_t: torch.Tensor, cond: torch.Tensor,
            mask: torch.Tensor, level: int = READOUT_LEVEL) -> dict:
    """Held-out IoU of linear readouts of the disc mask from the copy's features and from the residual at one
    connection (`level`), conditions split in halves (even indices fit, odd ones score)."""
    skips, _ = net._copy(net.conv_in(z_t) + net.controlnet_cond_embedding(cond), t, c_t)
    feat = skips[level]
    res = net.controlnet_down_blocks[level](feat)
    small = (F.adaptive_avg_pool2d(mask.float(), feat.shape[-2:]) > 0.5).float()
    train = torch.arange(len(mask)) % 2 == 0
    return {"copy": round(ridge_readout(feat, small, train), 5), "residual": round(ridge_readout(res, small, train), 5)}


@torch.no_grad()
def probe_inputs(base: MiniSD, vb: dict, seed: int) -> dict:
    """Fixed inputs for cnref.mini.probe (drawn from their own generator: training's random draws are untouched):
    the validation conditions with their perfect prompts; for the gate, z_t of their targets at timesteps
    spread over [0, T); for the readout, pure noise at t = T-1."""
    g = torch.Generator().manual_seed(10_000 + seed)
    z_0, n, T = vb["image"], len(vb["prompt"]), base.cfg.num_train_timesteps
    c_t = base.encode_prompt(vb["prompt"])
    t = torch.linspace(0, T - 1, n).long()
    a = base.alpha_bar[t].view(-1, 1, 1, 1)
    z_t = a.sqrt() * z_0 + (1 - a).sqrt() * torch.randn(z_0.shape, generator=g)
    z_T = torch.randn(z_0.shape, generator=g)
    return {"gate": (z_t, t, c_t, vb["cond"]), "readout": (z_T, torch.full((n,), T - 1), c_t, vb["cond"])}
