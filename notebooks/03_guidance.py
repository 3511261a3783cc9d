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
# # Classifier-free guidance with a ControlNet
#
# **Device and time:** CPU, under 30 s. Smoke mode: SD1.5 topology at width 8; full mode: width 32.
#
# $\epsilon_{prd} = \epsilon_{uc} + \beta_{cfg}(\epsilon_c - \epsilon_{uc})$ (paper, section 3.4). Where the control
# goes is a choice, `cnref.paper.guidance.guided_eps(mode=...)`:
# - `both`: in both branches (the official code keeps the hint in the unconditional branch);
# - `cond_only`: only in $\epsilon_c$ (diffusers' guess-mode pipeline); CFG then amplifies the control by $\beta$;
# - `cond_only_weighted`: only in $\epsilon_c$, connection $i$ scaled by $w_i = 64/h_i$ (CFG resolution weighting,
#   read literally);
# - `cond_only_normalized`: the same weights divided by their largest, $w_i = h_{min}/h_i \le 1$ (the reading in
#   which the weighting reduces the guidance, as the paper says it does).
#
# Measured effects of these modes on trained ControlNets belong to the guidance study (notebook 15); this
# notebook shows the mechanics and checks them against the formula.

# %%
import os

import matplotlib.pyplot as plt
import torch

from cnref.mini.base import sd15_unet
from cnref.paper.control import connection_scales, controlled_unet
from cnref.paper.controlnet import ControlNet, ControlNetConfig
from cnref.paper.guidance import MODES, WEIGHTING, cfg, guided_eps

SMOKE = os.environ.get("CNREF_SMOKE") == "1"
WIDTH = 8 if SMOKE else 32
torch.manual_seed(0)
unet = sd15_unet(width=WIDTH, cross_attention_dim=16, sample_size=16, heads=2, norm_groups=4).eval()
net = ControlNet(unet, ControlNetConfig(factor=1)).eval()
with torch.no_grad():      # stand-in for training: give the zero convs some weight
    for z in net.zero_convs():
        z.weight.normal_(0, 0.05)
z_t, t = torch.randn(2, 4, 16, 16), torch.tensor([500, 500])
c_t, c_uc, cond = torch.randn(2, 7, 16), torch.randn(2, 7, 16), torch.rand(2, 3, 16, 16)

# %% [markdown]
# ## The code: the formula, and where each mode puts the control
# `cfg` is the formula; `guided_eps` runs both branches in one batch, $[z_t; z_t]$ with $[c_{uc}; c_t]$, and
# gives the control to both halves (`both`) or to the conditional half only, with zero residuals in the other.

# %%
from cnref.views.notebook import listing, show_reading

listing(cfg, guided_eps)

# %% [markdown]
# ## Each mode equals its two branches put through the CFG formula

# %%
betas = [1, 2, 4, 6, 8, 10, 12]
effect = {m: [] for m in MODES}
worst = 0.0
with torch.no_grad():
    plain = cfg(unet(z_t, t, c_uc).sample, unet(z_t, t, c_t).sample, 1.0)
    for m in sorted(MODES):
        ctl_c = net(z_t, t, c_t, cond)
        if m in WEIGHTING:     # the resolution weighting, literal (>= 1) or normalised (<= 1)
            ctl_c = ctl_c.scaled(connection_scales(WEIGHTING[m], sizes=ctl_c.sizes))
        eps_c = controlled_unet(unet, z_t, t, c_t, ctl_c)
        eps_uc = controlled_unet(unet, z_t, t, c_uc, net(z_t, t, c_uc, cond) if m == "both" else None)
        for beta in betas:
            got = guided_eps(unet, [(net, cond)], z_t, t, c_t, c_uc, beta=beta, mode=m)
            err = (got - cfg(eps_uc, eps_c, beta)).abs().max().item()
            assert err < 2e-5 * beta, (m, beta, err)    # fp32 rounding of batched vs separate branches, times beta
            worst = max(worst, err / beta)
            no_control = cfg(unet(z_t, t, c_uc).sample, unet(z_t, t, c_t).sample, beta)
            effect[m].append((got - no_control).norm().item() / no_control.norm().item())
print("all modes match the formula for beta in", betas, f"(largest |difference| / beta: {worst:.1e})")

# %% [markdown]
# ## How much the control moves $\epsilon_{prd}$, per mode, as $\beta$ grows
# With the control in both branches it cancels partly in $\epsilon_c - \epsilon_{uc}$; in the conditional branch
# only it is multiplied by $\beta$. Resolution weighting, read literally, multiplies the low-resolution
# connections up to 8x; normalised to at most 1 it scales the high-resolution ones down instead.
# (Random, untrained zero convs here: the curves show the mechanics, not image quality.)

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for m, v in effect.items():
    ax.plot(betas, v, "o-", label=m)
ax.set_xlabel("guidance scale beta"); ax.set_ylabel("|eps(control) - eps(no control)| / |eps|")
ax.set_yscale("log"); ax.legend(); ax.set_title("Effect of the control on the guided prediction")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Per-connection scales
# Two of the modes scale each of the 13 connections (notebook 02 lists them) by its own $w_i$. Over SD's 64x64
# latents, with $h_i$ the connection's size:
# - the CFG resolution weighting (paper, section 3.4): $w_i = 64 / h_i$, read literally, or normalised to at most 1,
#   $w_i = h_{min} / h_i$;
# - guess mode: the official code's $0.825^{12-i}$, diffusers' `logspace(-1, 0, 13)` $= 10^{-1 + i/12}$.

# %%
with torch.no_grad():
    sd_sizes = [r.shape[-1] * 4 for r in net(z_t, t, c_t, cond).residuals]
scales = {"0.825^(12-i)": connection_scales("guess_official"), "logspace": connection_scales("guess_diffusers"),
          "64/h_i": connection_scales("resolution", sizes=sd_sizes),
          "h_min/h_i": connection_scales("resolution_normalized", sizes=sd_sizes)}
print(f"{'i':>2} {'h_i (SD)':>8} " + " ".join(f"{k:>13}" for k in scales))
for i in range(13):
    print(f"{i:>2} {sd_sizes[i]:>8} " + " ".join(f"{w[i]:>13.4f}" for w in scales.values()))
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
axes[0].plot(scales["0.825^(12-i)"], "o-", label="official 0.825^(12-i)")
axes[0].plot(scales["logspace"], "x--", ms=9, label="diffusers logspace(-1, 0, 13)")
axes[0].set_title("guess mode: the two formulas nearly coincide"); axes[0].legend()
axes[1].bar(range(13), scales["64/h_i"], label="64 / h_i (literal)")
axes[1].bar(range(13), scales["h_min/h_i"], label="h_min / h_i (normalised)")
axes[1].set_title("resolution weighting: up to 8x, or at most 1"); axes[1].legend()
for ax in axes:
    ax.set_xlabel("connection i (12 = middle)")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Guess mode
# No prompt, control only in $\epsilon_c$, connections scaled by the guess-mode $w_i$ above: the ControlNet must
# recognise the content from the condition alone.

# %%
with torch.no_grad():
    for kind in ["uniform", "guess_official", "guess_diffusers"]:
        w = connection_scales(kind)
        e = guided_eps(unet, [(net, cond)], z_t, t, c_uc, c_uc, beta=4.0, mode="cond_only", scales=w)
        base = unet(z_t, t, c_uc).sample
        print(f"{kind:16s} scales {w[0]:.3f} ... {w[-1]:.3f}; |eps - eps(no control)| / |eps| = "
              f"{((e - base).norm() / base.norm()).item():.3e}")

# %% [markdown]
# ## Reading

# %%
show_reading("""
**The {n_modes} guidance modes are the CFG formula with the control placed in different branches**, matching it for
every scale tried (largest difference per unit of beta {worst:.1e}, fp32 rounding). With the control in both
branches its effect partly cancels in the difference of the two branches; in the conditional branch only, it is
multiplied by beta, and the resolution weighting multiplies the coarse connections further (the figure, on
untrained zero convs: it shows the mechanics, not image quality). Notebooks 15 and 16 measure what the modes and
guess mode do to trained ControlNets' images.

**What to take away.**
- Classifier-free guidance mixes two predictions, $\\epsilon_{{uc}} + \\beta(\\epsilon_c - \\epsilon_{{uc}})$; a
  ControlNet's residuals can enter either branch, and that choice is the guidance mode.
- In both branches the control partly cancels; in the conditional branch only, guidance multiplies it by
  $\\beta$; the resolution weighting multiplies the coarse connections further.
- Guess mode drops the prompt and scales the connections down towards the fine ones.

**Exercise** (seconds, here or with `CNREF_SMOKE=1`): in the cell that measures how much the control moves
$\\epsilon_{{prd}}$, set every zero conv back to zero (`z.weight.zero_()` for `z in net.zero_convs()`). What does
each mode's curve become, and which identity of notebook 01 explains it?
""", worst=worst, n_modes=len(MODES));
