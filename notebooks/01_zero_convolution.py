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
# # Zero convolution and its gradient
#
# **Device and time:** CPU, under 30 s (smoke and full mode alike; no results files needed).
#
# ControlNet joins a trainable copy to a locked model through *zero convolutions*: 1x1 convolutions with
# weight and bias initialised to zero (paper, section 3.1):
#
# $$Z(I; W, B)_{p,i} = B_i + \sum_j I_{p,j} W_{i,j}$$
#
# At $W = 0$: $\partial Z/\partial B = 1$, $\partial Z/\partial W = I \neq 0$, $\partial Z/\partial I = W = 0$.
# The layer outputs zero and passes no gradient back, yet its own weight gets a gradient; after one
# optimiser step $W \neq 0$ and gradient starts to flow into what lies behind it.
# The code is `cnref.paper.zero_conv` (`zero_conv`, `zero_conv_grads`) and `cnref.paper.block.ControlledBlock` (Eq. 2).

# %%
import os

import matplotlib.pyplot as plt
import torch
from torch import nn

from cnref.paper.block import ControlledBlock
from cnref.paper.zero_conv import zero_conv, zero_conv_grads
from cnref.views.notebook import listing, show_reading

SMOKE = os.environ.get("CNREF_SMOKE") == "1"
torch.manual_seed(0)

# %% [markdown]
# ## The code: a zero conv, its gradient by hand, and Eq. 2
# Each line carries the equation it computes.

# %%
listing(zero_conv, zero_conv_grads, ControlledBlock)

# %% [markdown]
# ## The analytic gradient equals autograd
# `zero_conv_grads` writes the three sums above with `einsum`; autograd differentiates the conv itself.

# %%
z = zero_conv(4, 6).double()
I = torch.randn(3, 4, 5, 5, dtype=torch.float64, requires_grad=True)
g = torch.randn(3, 6, 5, 5, dtype=torch.float64)      # an upstream gradient dL/dZ
(z(I) * g).sum().backward()
dI, dW, dB = zero_conv_grads(I.detach(), z.weight.detach(), g)
print("max |dL/dI - autograd| =", (dI - I.grad).abs().max().item(), "  (dL/dI is all zero:", bool((dI == 0).all()), ")")
print("max |dL/dW - autograd| =", (dW - z.weight.grad.view(6, 4)).abs().max().item(), "  |dL/dW| =", dW.norm().item())
print("max |dL/dB - autograd| =", (dB - z.bias.grad).abs().max().item())

# %% [markdown]
# ## Eq. 1 and Eq. 2: a block, and the block with a control
# The paper writes any block of a network (a ResNet block, a transformer block) as Eq. 1,
#
# $$y = \mathcal{F}(x; \Theta).$$
#
# ControlNet locks $\Theta$, makes a trainable copy $\Theta_c$ that also sees the condition $c$, and joins the copy
# to the block through two zero convolutions (Eq. 2):
#
# $$y_c = \mathcal{F}(x; \Theta) + \mathcal{Z}\bigl(\mathcal{F}(x + \mathcal{Z}(c; \Theta_{z1}); \Theta_c); \Theta_{z2}\bigr).$$
#
# At initialisation both zero convs output zero, so $y_c = y$: the controlled block computes exactly what the
# locked block computes.

# %%
F = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, 8, 3, padding=1))
block = ControlledBlock(F, in_channels=4, out_channels=8, cond_channels=3)
x, c, target = torch.randn(4, 4, 8, 8), torch.rand(4, 3, 8, 8), torch.randn(4, 8, 8, 8)
print("y_c == y exactly:", torch.equal(block(x, c), block.locked(x)))

# %% [markdown]
# ## Which parameters receive gradient, step by step
# Step 1: only the output zero conv $Z_2$. Step 2: the trainable copy and $Z_1$ too. The locked block never.

# %%
groups = {"Z2 (output zero conv)": block.z2, "trainable copy": block.trainable, "Z1 (input zero conv)": block.z1}
opt = torch.optim.SGD([p for p in block.parameters() if p.requires_grad], lr=0.1)
norms = {k: [] for k in groups}
steps = 3 if SMOKE else 5
for step in range(steps):
    opt.zero_grad(set_to_none=False)
    ((block(x, c) - target) ** 2).mean().backward()
    for k, m in groups.items():
        norms[k].append(sum(p.grad.norm() ** 2 for p in m.parameters()).sqrt().item())
    opt.step()
print("locked block gradients:", [p.grad for p in block.locked.parameters()])

fig, ax = plt.subplots(figsize=(7, 3))
w = 0.25
for k, (name, v) in enumerate(norms.items()):
    ax.bar([s + 1 + (k - 1) * w for s in range(steps)], v, width=w, label=name)
ax.set_xlabel("training step"); ax.set_ylabel("gradient norm"); ax.set_yscale("symlog", linthresh=1e-6)
ax.set_xticks(range(1, steps + 1)); ax.legend(); ax.set_title("Gradient flow through Eq. 2")
plt.tight_layout(); plt.show()
for name, v in norms.items():
    print(f"{name:24s}", ["%.2e" % n for n in v])

# %% [markdown]
# ## The same over a Stable-Diffusion-shaped UNet
# In the full ControlNet the hint encoder E ends in a zero conv too (Z1), so the chain is one step longer:
# step 1 trains the 13 output zero convs, step 2 the trainable copy and E's last conv, step 3 E's inner convs.
# (The test `tests/test_controlnet.py::test_gradient_flow_over_the_unet` asserts this.)

# %%
from cnref.mini.base import sd15_unet
from cnref.paper.control import controlled_unet
from cnref.paper.controlnet import ControlNet

unet = sd15_unet(width=8, cross_attention_dim=16, sample_size=16, heads=2, norm_groups=4).requires_grad_(False)
net = ControlNet(unet)
hint = net.controlnet_cond_embedding
parts = {"13 output zero convs": [*net.controlnet_down_blocks.parameters(), *net.controlnet_mid_block.parameters()],
         "trainable copy": [*net.conv_in.parameters(), *net.down_blocks.parameters(), *net.mid_block.parameters()],
         "E: last (zero) conv": list(hint.conv_out.parameters()),
         "E: inner convs": [p for n, p in hint.named_parameters() if not n.startswith("conv_out")]}
opt = torch.optim.SGD(net.parameters(), lr=0.5)
z_t, t, c_t, cond = torch.randn(2, 4, 16, 16), torch.tensor([10, 500]), torch.randn(2, 5, 16), torch.rand(2, 3, 16, 16)
eps = torch.randn_like(z_t)
for step in range(1, 4):
    opt.zero_grad(set_to_none=False)
    ((controlled_unet(unet, z_t, t, c_t, net(z_t, t, c_t, cond)) - eps) ** 2).mean().backward()
    print(f"step {step}: " + ", ".join(f"{k}: {sum(p.grad.norm() ** 2 for p in ps).sqrt().item():.1e}"
                                       for k, ps in parts.items()))
    opt.step()

# %% [markdown]
# ## Reading

# %%
show_reading("""
**Eq. 2 starts as the identity and still learns.** The analytic gradients of a zero convolution match autograd
to {grad_err:.1e}: dL/dI is exactly zero (nothing flows back into the block's input through a zero weight) while
dL/dW is not ({grad_w:.2e}), because it is the input, not the weight, that multiplies the upstream gradient. So at
step one only the output zero conv moves; from step two the trainable copy and the input zero conv receive
gradient too, and the locked block never does (the bars above). Over the full UNet the chain is one step
longer, because the hint encoder ends in a zero conv as well (the last printout).

**What to take away.**
- A zero convolution outputs zero and passes no gradient back, but its own weight's gradient is the input
  times the upstream gradient, which is not zero: it learns from the first step.
- At initialisation Eq. 2 is exactly the locked block ($y_c = y$): adding a ControlNet changes nothing.
- The path opens in order: the output zero conv first, then the copy and the input zero conv.

**Exercise** (seconds, here or with `CNREF_SMOKE=1`): in the step-by-step cell, give the output zero conv random
weights first (`cnref.paper.zero_conv.gaussian_(block.z2, 0.02)`) and rerun it. Does $y_c = y$ still hold, and
which parameters receive gradient at step 1 now?
""", grad_err=max((dW - z.weight.grad.view(6, 4)).abs().max().item(), (dB - z.bias.grad).abs().max().item()),
     grad_w=dW.norm().item());
