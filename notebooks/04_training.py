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
# # Training a ControlNet: the data, the base, Eq. 3 and one step
#
# Notebooks 01-03 checked the pieces on untrained networks. Before the experiments train anything (05 onwards),
# this notebook shows what they train on and how: the procedural data with its prompts and exact masks, the locked
# base's own samples, the loss (Eq. 3), prompt dropout, one training step run live, and the detector that turns a
# sample into the IoU every later figure plots. And the architecture, drawn from the model that trains.
#
# **Device and time:** CPU, seconds, both modes. Full mode uses the `cpu` preset's shipped base (32x32 pixels,
# the model every committed run trains over); smoke mode (`CNREF_SMOKE=1`, CI) its tiny smoke base.

# %%
import matplotlib.pyplot as plt
import torch

from cnref.mini.data import PROMPT_SETTINGS, VAL_SEED, Fill50K, with_setting
from cnref.mini.engine import controlnet_optimizer, step_generator
from cnref.mini.metrics import detect_disc, fidelity, iou
from cnref.mini.presets import preset
from cnref.mini.sample import generate
from cnref.mini.shipping import load_base
from cnref.paper.controlnet import ControlNet
from cnref.paper.loss import drop_prompts, eq3_loss
from cnref.views.diagram import draw_controlnet
from cnref.views.images import image_rows
from cnref.views.notebook import listing, show_reading, smoke_mode

PRESET = "smoke" if smoke_mode() else "cpu"
base = load_base(PRESET)
recipe = preset(PRESET).train
size = base.cfg.size
print(f"preset {PRESET}: a {size}x{size} base, the recipe trains at lr {recipe.lr:g}, batch {recipe.batch_size}, "
      f"{recipe.steps} steps, {recipe.prompt_dropout:.0%} empty prompts")

# %% [markdown]
# ## The data: procedural Fill50K
# The paper's toy task (Fill50K, in the official repository's tutorial): a circle's outline is the condition
# $c_i$, the target is the filled disc, and the prompt names the two colours. Here the images are drawn on the
# fly, each a pure function of (seed, index), and every sample carries its exact disc mask, which is what makes
# condition fidelity measurable: the IoU of the disc found in a generated image with the true one.

# %%
k = 8
held_out = Fill50K(size=size, seed=VAL_SEED).batch(range(k))
image_rows([("conditions c_i (the circle's outline)", held_out["cond"] * 2 - 1),
            ("targets z_0 (pixel space stands in for SD's latent space)", held_out["image"]),
            ("exact disc masks", held_out["mask"].float().expand(-1, 3, -1, -1) * 2 - 1)], k,
           captions={1: list(held_out["prompt"])})
plt.show()

# %% [markdown]
# The paper samples under four prompt settings (Fig. 8): the perfect prompt, none, an insufficient one and a
# conflicting one (other colours than the target's). Condition fidelity is judged under each; the prompts of the
# first three conditions above:

# %%
for s in ("perfect", "none", "insufficient", "conflicting"):
    print(f"{s:<13}", [repr(p) for p in with_setting(held_out, s)["prompt"][:3]])
assert set(PROMPT_SETTINGS) == {"perfect", "none", "insufficient", "conflicting"}

# %% [markdown]
# ## The locked base alone
# The base is a small text-to-image diffusion model trained on these images (`python -m cnref train base --preset cpu --run-dir runs/base_cpu`, shipped). Given
# the prompt it draws a disc of the right colours, but anywhere: without a ControlNet it has no way to know where
# the condition puts it. The dashed line is each condition's outline.

# %%
alone = generate(base, list(held_out["prompt"]), steps=10, beta=3.0, seed=1)
image_rows([("the base alone, perfect prompt (DDIM 10 steps, CFG 3)", alone, held_out["cond"])], k)
plt.show()
print("IoU of the detected disc with the condition's:", [f"{x:.2f}" for x in fidelity(alone, held_out)["iou"].tolist()])

# %% [markdown]
# ## ControlNet over this UNet
# What trains and what stays locked, read off the model: each of the 13 connections with its resolution and
# width, the trainable copy beside the locked encoder, the zero convs, and the condition entering through the hint
# encoder E and Z1 (Eq. 2: $y_c = F(x; \Theta) + Z(F(x + Z(c; \Theta_{z1}); \Theta_c); \Theta_{z2})$).

# %%
torch.manual_seed(0)
net = ControlNet(base.unet, recipe.control)
draw_controlnet(net, base.unet, size)
plt.show()

# %% [markdown]
# ## Eq. 3: the loss
# $$\mathcal{L} = \mathbb{E}_{z_0, t, c_t, c_f, \epsilon \sim \mathcal{N}(0, I)}
#   \left[ \left\lVert \epsilon - \epsilon_\theta(z_t, t, c_t, c_f) \right\rVert_2^2 \right],
#   \qquad z_t = \sqrt{\bar\alpha_t}\, z_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon$$
#
# the same denoising loss as Stable Diffusion's, with the condition $c_f$ as one more input of the noise
# predictor. Here is the function every training run calls, base and ControlNet alike:

# %%
listing(eq3_loss)

# %% [markdown]
# **Prompt dropout.** "We randomly replace 50% text prompts $c_t$ with empty strings" (Sec. 3.3), so that the
# ControlNet learns to read the condition itself rather than lean on the prompt. `drop_prompts` draws it from the
# run's generator; over many prompts the empty share is the recipe's:

# %%
prompts = ["red circle with blue background"] * 2000
dropped = drop_prompts(prompts, recipe.prompt_dropout, torch.Generator().manual_seed(0))
share = sum(p == "" for p in dropped) / len(dropped)
print(f"empty prompts: {share:.3f} of {len(dropped)} (recipe: {recipe.prompt_dropout})")
assert abs(share - recipe.prompt_dropout) < 0.05

# %% [markdown]
# ## One training step, live
# A batch at step 0 (`Fill50K.batch`), Eq. 3 with the ControlNet's residuals added to the locked UNet, a backward
# pass and one AdamW step, as `cnref.mini.train` runs them.

# %%
lr, batch = recipe.lr, Fill50K(size=size).batch(range(16))
opt = controlnet_optimizer([{"params": net.trainable(), "lr": lr}], lr)
eps_theta = lambda z_t, t, c_t: net.eps(base.unet, z_t, t, c_t, batch["cond"])
loss = eq3_loss(eps_theta, base.encode_prompt, batch["image"], batch["prompt"], base.alpha_bar,
                prompt_dropout=recipe.prompt_dropout, offset_noise=base.cfg.offset_noise,
                generator=step_generator(0, 0))
before = {n: p.detach().clone() for n, p in net.named_parameters()}
loss.backward()
grads = {n: p.grad.detach().clone() for n, p in net.named_parameters()}
opt.step()
print(f"loss at step 0: {loss.item():.4f}")

# %% [markdown]
# **Adam's first step moves every weight by lr, in the sign of its gradient.** After one step Adam's moment
# estimates are $m = g$ and $v = g^2$ (bias-corrected), so the update is $-\text{lr}\cdot g / (|g| + \epsilon)$:
# about $-\text{lr}\cdot\text{sign}(g)$ wherever the gradient is not tiny, whatever its size, and zero where the
# gradient is exactly zero. Which parameters moved?

# %%
moved = {n: (p.detach() - before[n]) for n, p in net.named_parameters()}
rows = []
for part, prefix in (("Z2, the 13 output zero convs", ("controlnet_down_blocks", "controlnet_mid_block")),
                     ("Z1, the hint encoder's last conv", ("controlnet_cond_embedding.conv_out",)),
                     ("the rest of E", ("controlnet_cond_embedding",)),
                     ("the trainable copy", ("",))):
    names = [n for n in moved if n.startswith(prefix) and not any(n in r[2] for r in rows)]
    n_moved = sum(int(torch.count_nonzero(moved[n])) for n in names)
    n_all = sum(moved[n].numel() for n in names)
    rows.append((part, f"{n_moved} of {n_all}", set(names)))
    print(f"{part:<34} weights moved: {n_moved} of {n_all}")
g = torch.cat([grads[n].flatten() for n in grads])
d = torch.cat([moved[n].flatten() for n in moved])
big = g.abs() > 1e-5
print(f"where |g| > 1e-5 ({int(big.sum())} weights): update / (-lr sign g) in "
      f"[{(d[big] / (-lr * g[big].sign())).min():.4f}, {(d[big] / (-lr * g[big].sign())).max():.4f}]")
assert torch.allclose(d[big], -lr * g[big].sign(), rtol=1e-2, atol=0)
assert torch.count_nonzero(d[g == 0]) == 0

# %% [markdown]
# Only the 13 output zero convs moved. With every Z2 zero, the copy and E are cut off from the loss: their
# gradient is exactly zero (notebook 01 shows why, step by step), so Adam leaves them where they are. From step 2
# the Z2 weights are about lr in size, gradient reaches the copy, and everything trains. This is also why the
# learning rate sets how fast a zero-initialised control can open (notebook 19).

# %% [markdown]
# ## The disc detector: from a sample to an IoU
# Condition fidelity needs the disc found again in a generated image: `detect_disc` splits the pixels into two
# colour clusters (2-means, the background owning the border) and takes the other one as the disc. On the ground
# truth it finds the disc almost exactly; on the base's samples it finds a disc, in the wrong place. The found disc
# $\hat D$ is scored against the true one $D$ by their intersection over union,
#
# $$\mathrm{IoU}(\hat D, D) = \frac{|\hat D \cap D|}{|\hat D \cup D|},$$
#
# 1 for a disc found exactly in place, 0 for one that misses it; two empty masks count as 1.

# %%
listing(iou)

# %%
found = {name: detect_disc(x) for name, x in (("targets", held_out["image"]), ("base alone", alone))}
image_rows([(f"the disc detected in the targets: IoU {fidelity(held_out['image'], held_out)['iou'].mean():.3f}",
             found["targets"].float().expand(-1, 3, -1, -1) * 2 - 1, held_out["cond"]),
            (f"the disc detected in the base's samples: IoU {fidelity(alone, held_out)['iou'].mean():.3f}",
             found["base alone"].float().expand(-1, 3, -1, -1) * 2 - 1, held_out["cond"])], k)
plt.show()

# %%
gt_iou = fidelity(held_out["image"], held_out)["iou"].mean().item()
base_iou = fidelity(alone, held_out)["iou"].mean().item()
show_reading("""
**What every later notebook measures, and where it starts.** The detector finds the true disc in the targets
with IoU {gt:.3f} (the ground-truth row of every later table) and finds the base's own discs, drawn wherever the
base likes, at IoU {base:.3f} against the condition (the base-alone row). A ControlNet's training moves the IoU
from the second towards the first; notebook 05 watches it happen, suddenly.

**What to take away.**
- Eq. 3 is Stable Diffusion's loss with the condition as one more input; half the prompts are empty.
- Only the ControlNet trains: a copy of the encoder, the hint encoder and the zero convs ({n_params} parameters
  here); the base is locked.
- The first step moves only the 13 output zero convs, each weight by lr; the copy starts learning at step 2.

**Exercise** (smoke mode, seconds): set every Z2 to a small random value before the step
(`cnref.paper.zero_conv.gaussian_`) and rerun the step. Which parts move now, and what does the copy's first
update look like?
""", gt=gt_iou, base=base_iou, n_params=f"{sum(p.numel() for p in net.trainable()) / 1e6:.2f}M")
