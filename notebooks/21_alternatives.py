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
# # ControlNet and its successors on one engine
#
# Every successor of ControlNet reports its numbers on its own base, data and budget. Here all of them control
# the same locked mini Stable Diffusion, train through the same loop, loss, data and recipe (500 steps, batch 64,
# lr 1e-4, half the prompts empty as in the paper), and are measured by the same final evaluation (four prompt
# settings on held-out conditions, plus KID on (image, condition) pairs of 256 samples with the perfect prompt,
# `cnref.measure.quality`). The learning rate is one for all here, the recipe's, which is not what each official
# recipe does: ControlNet's tutorial_train.py and T2I-Adapter's paper train at 1e-5, ControlNet-XS's official
# config at 1e-5 too (configs/training/sd/sd15_encD_canny_53m.yaml), and ControlNeXt's SD1.5 script gives its
# control module 10x the base lr and also trains the UNet's attention output projections, which cnref keeps
# locked. So the first half of this notebook compares the designs under one recipe, not each at its best, and
# after a fixed 500 steps, where some had not yet converged. The second half retests them on fair terms: each at
# its own learning rate, trained until its curve stops rising, and judged there, by rules stated before those
# runs. T2I-Adapter also runs with the cubic timesteps its training uses; ControlNeXt uses its script's scale for
# sparse conditions (s = 0.35).
#
# | design | where the control enters | when it runs | module |
# |---|---|---|---|
# | ControlNet (Zhang et al. 2023) | a trainable copy of the encoder; zero convs add its outputs to the decoder's skips and the middle block | every denoising step | `cnref.paper.controlnet` |
# | T2I-Adapter (Mou et al. 2023) | a small network on the condition alone; its features are added to the locked encoder's, one per level | once per generation (no t, no prompt) | `cnref.successors.t2i_adapter` (diffusers' `T2IAdapter`) |
# | ControlNet-XS (Zavadski et al. 2024) | a small control encoder trained from scratch, connections both ways with the locked encoder at every block | every step | `cnref.successors.controlnet_xs` (diffusers' `ControlNetXSAdapter`) |
# | ControlNeXt (Peng et al. 2024) | a few ResNet blocks on the condition, cross-normalised to the locked feature and added at one place (after the first down block, as the official code) | every step | `cnref.successors.controlnext` |
#
# Each paper's headline claim is a row of the claims table, stated before any of these runs: T2I-Adapter within
# X = 0.05 IoU of ControlNet ("slightly worse", diffusers' documentation's words), with our uniform timesteps and with the cubic schedule
# its paper trains with; ControlNet-XS matching ControlNet's fidelity (within 0.05) with a fifth of the trainable
# parameters, and better image quality (its paper: better FID); ControlNeXt converging faster; the adapter cheaper
# per generated image (it runs once) and XS faster per image (its paper: "about twice as fast"), each speed claim
# over fresh processes of one interleaved bench.
#
# **Device and time:** full mode reads the committed results (seconds). Making them, one run at a time on 2 CPU
# cores (12-20 minutes a run, machine-dependent): `python -m cnref run successors --preset cpu --seeds 0 1 2
# --record`, and the costs: `python -m cnref bench successors --preset cpu --repeats 5` and `... --processes 5`
# (about 10 minutes); the fair terms: `python -m cnref run successors_lr --preset cpu --seeds 0 --record` (the
# learning-rate sweep, 8 runs, 5-10 minutes each) and `python -m cnref run successors_fair --preset cpu --seeds 0 1
# 2 --record` (15 runs, 7-16 minutes each, about 3 hours; each alone on the cores: its equal-compute figures are
# wall seconds). Smoke mode (`CNREF_SMOKE=1`, CI)
# trains T2I-Adapter and ControlNet-XS, then ControlNet and ControlNeXt on fair terms, for a few steps on the tiny
# smoke base and benches all four there (under a minute).

# %%
from cnref.views.designs import Designs
from cnref.views.notebook import smoke_mode

designs = Designs("smoke" if smoke_mode() else "cpu")
rep = designs.rep

# %% [markdown]
# ## The one table
# What each design costs (parameters, training speed, sampling cost: ratios to the ControlNet's, measured with the
# designs interleaved in one process) and what it buys (convergence step, condition fidelity under the paper's four
# prompt settings, prompt fidelity, image quality that sees placement).

# %%
designs.table();

# %% [markdown]
# ## Arithmetic against time
# On 2 CPU cores at this tiny size much of a step is per-operation overhead, not arithmetic, so a measured speed
# ratio may not carry to a GPU or to SD1.5's size. The counted FLOPs do: here each design's FLOPs as a ratio to the
# ControlNet's beside the measured time ratio at the cpu preset, and the FLOP ratios at SD1.5's shape
# (`python -m cnref bench flops`, nothing computed: shapes only).

# %%
designs.flops();

# %% [markdown]
# ## Fidelity and loss during training
# Mean over seeds, band = min-max; IoU on the fixed held-out set with the perfect prompt. A successor with no
# zero-initialised output (ControlNeXt's cross normalisation, XS's connections) starts from a perturbed base.

# %%
if rep:
    rep.training()

# %% [markdown]
# ## Final evaluation under the four prompt settings, and image quality
# The first tables: 64 held-out conditions per prompt setting, with the calibration rows (ground truth, the base
# alone). The last: 256 held-out conditions with the perfect prompt, scored by KID on (image, condition) pairs
# (lower is better; it sees where the disc is, which FID does not).

# %%
if rep:
    rep.final(keys=("iou", "fill_ok"), tables=("iou", "fill_ok", "bg_ok"), finding="t2i_fidelity")
    from cnref.measure.evaluate import QUALITY_SET
    from cnref.views.tables import table
    print("image quality: KID x 1e3 of (image, condition) pairs (lower is better), and IoU, on the same samples")
    print(table(rep.by, None, "kid", [QUALITY_SET]), table(rep.by, None, "iou", [QUALITY_SET]), sep="\n")

# %% [markdown]
# ## Samples (seed 0, the same noise in every row, each condition's outline drawn over its sample)

# %%
if rep:
    rep.grid(settings=("held_out/perfect", "held_out/none"))

# %% [markdown]
# ## Verdicts
# Each paper's claim by the project's rule (`cnref.lab.verdict`), as stated before the runs.

# %%
from cnref.views.tables import print_runs, print_verdicts

verdicts = print_verdicts("successors", designs.preset, rep.root if rep else None, rep.by if rep else {})

# %% [markdown]
# ## Reading
# Every figure filled in from the results and the bench above.

# %%
template = """
**What each design costs.** Against the ControlNet's trainable parameters, T2I-Adapter trains {params[t2i_adapter]},
ControlNet-XS {params[controlnet_xs]} and ControlNeXt {params[controlnext]} (the ControlNet: {params[controlnet]}).
Per generated image (20 DDIM steps, CFG 9) the adapter costs {sample[t2i_adapter]} of the ControlNet's time
({v[t2i_cost].word}, {v[t2i_cost].evidence}): it runs once, while the locked UNet still runs at every step, so the saving is
the ControlNet's share of a step, not the whole step. XS costs {sample[controlnet_xs]} ({v[xs_speed].word},
{v[xs_speed].evidence}) and ControlNeXt {sample[controlnext]}. Training images/s: adapter {train[t2i_adapter]}, XS
{train[controlnet_xs]}, ControlNeXt {train[controlnext]} of the ControlNet's (ControlNeXt's control enters after the
encoder's first level, so its backward pass crosses the whole locked encoder).

**Arithmetic, not overhead.** Counted rather than timed, a generated image takes {flops[cpu][t2i_adapter][image]}
(adapter), {flops[cpu][controlnet_xs][image]} (XS) and {flops[cpu][controlnext][image]} (ControlNeXt) of the
ControlNet's FLOPs at this size, and {flops[sd15][t2i_adapter][image]}, {flops[sd15][controlnet_xs][image]} and
{flops[sd15][controlnext][image]} at SD1.5's: the locked UNet's own share bounds what any design can save per image.
At SD1.5's shape this XS (its size in the table above) needs {flops[sd15][controlnet_xs][image]} of the ControlNet's
arithmetic per image, so its paper's "about twice as fast" cannot come from arithmetic alone at that size; the
measured ratios above add the overhead of a small model on 2 CPU cores.

**What each buys.** Condition fidelity with the perfect prompt: ControlNet {iou[controlnet]}, T2I-Adapter
{iou[t2i_adapter]} ({v[t2i_fidelity].word}, {v[t2i_fidelity].evidence}; with the cubic timesteps {iou[t2i_adapter_cubic]},
{v[t2i_cubic_fidelity].word}), ControlNet-XS {iou[controlnet_xs]} ({v[xs_fidelity].word}, {v[xs_fidelity].evidence}), ControlNeXt
{iou[controlnext]}. With no prompt: {iou_none[controlnet]}, {iou_none[t2i_adapter]}, {iou_none[controlnet_xs]},
{iou_none[controlnext]} in the same order. Convergence step (where the IoU first reaches {level}): ControlNet
{step[controlnet]}, T2I-Adapter {step[t2i_adapter]} (cubic timesteps: {step[t2i_adapter_cubic]}), ControlNet-XS
{step[controlnet_xs]}, ControlNeXt {step[controlnext]} ({v[controlnext_earlier].word}, {v[controlnext_earlier].evidence}). Every design's final
fidelity is measured after the same 500 steps, so it counts how early a design converges as well as how far it
gets. Before the
first update (the step-0 validation) the IoU is ControlNet {start[controlnet]}, T2I-Adapter {start[t2i_adapter]},
ControlNet-XS {start[controlnet_xs]}, ControlNeXt {start[controlnext]}: the ControlNet's and XS's zero convs add
nothing yet, so theirs is the base's, while the adapter's and ControlNeXt's untrained features already enter the
locked UNet. Whatever of a design's step-0 IoU lies above the base's is a head start of its random injection
(convolutions, random or not, keep where the disc is), not something it learned. XS's image quality against the ControlNet's: {v[xs_quality].word}
({v[xs_quality].measured}).

**What to take away.**
- Each successor moves where the condition enters: once per image (T2I-Adapter), both ways at every layer
  (ControlNet-XS), or once after the first level (ControlNeXt).
- At one learning rate and 500 steps, T2I-Adapter within the tolerance of ControlNet's fidelity is
  {v[t2i_fidelity].word}; ControlNet-XS's is {v[xs_fidelity].word}; ControlNeXt converging earlier is
  {v[controlnext_earlier].word}, from a head start (its injection has no zero init).

**Exercise** (seconds): for each design, build it over notebook 02's UNet with
`cnref.successors.design_config(name).build(unet)` and count `sum(p.numel() for p in net.trainable())`. Which
design trains the fewest parameters, and which runs at every denoising step?
"""
if rep:
    rep.reading(template, **designs.facts())
else:
    print("the reading needs the runs (pending)")

# %% [markdown]
# ## On fair terms: each design at its own learning rate, trained to its plateau
# Stated before these runs (`cnref.lab.ablations`, `successors_fair`):
# - **Learning rate:** seed 0 of each design at 1e-4 (the run above), 3e-4 and 1e-3 (`successors_lr`); of the lrs
#   whose plateau level is within 0.02 IoU of the best, the one that reaches the convergence level first
#   (`cnref.lab.convergence.best_lr`). ControlNeXt's official recipe is a variant of its own: the base's attention
#   output projections trained too, at a tenth of the module's lr.
# - **Plateau:** a run stops at the first validation, from step 200 on, where the mean validation IoU of its last
#   100 steps is within 0.02 of the 100 steps before (`cnref.mini.engine.plateaued`), or at twice the recipe's
#   budget (1000 steps); validations every 5 steps up to step 100, so early rises and head starts show.
# - **Judged there:** the final evaluation (four prompt settings, and KID on 256 held-out conditions) at the stop;
#   the time to the level from zero (the convergence step) and from each design's own step-0 IoU (the half-rise
#   step); and at equal compute, the validation IoU after the same seconds of training.

# %%
if designs.fair:
    print_runs(designs.fair.by)
    designs.fair_table();

# %% [markdown]
# ## The curves against steps and against seconds
# Left: the validation IoU against the step (mean over seeds, band = min-max), with the base alone, the ground
# truth and the convergence level; a design's mean stops where its first seed stopped, and ControlNeXt's two
# recipes lie on top of each other there. Right: each seed's curve to its own stop, against its seconds of
# training on this CPU, with the equal-compute mark: a design that steps faster moves left.

# %%
if designs.fair:
    designs.fair_curves()

# %% [markdown]
# ## Verdicts on fair terms, and what moved
# The claims of `successors_fair`, each by the project's rule; then each paper's claims under one recipe beside the
# same claim on fair terms.

# %%
fair_verdicts = print_verdicts("successors_fair", designs.preset, designs.fair.root if designs.fair else None,
                               designs.fair.by if designs.fair else {})
designs.retests();

# %% [markdown]
# ## Reading on fair terms
# Every figure filled in from the fair runs above; in brackets, where given, the same design under one recipe.

# %%
fair_template = """
**Each at its own learning rate.** The sweep chose {lr[controlnet]} for ControlNet, {lr[t2i_adapter]} for
T2I-Adapter, {lr[controlnet_xs]} for ControlNet-XS and {lr[controlnext]} for ControlNeXt. The plateau rule stopped
ControlNet at step {stop[controlnet]} ({stop_s[controlnet]} s of training), T2I-Adapter at {stop[t2i_adapter]}
({stop_s[t2i_adapter]} s), ControlNet-XS at {stop[controlnet_xs]} ({stop_s[controlnet_xs]} s) and ControlNeXt at
{stop[controlnext]} ({stop_s[controlnext]} s).

**Fidelity at the plateau** (held-out conditions, perfect prompt; in brackets, under one recipe after 500 steps).
ControlNet {iou[controlnet]} ({equal_iou[controlnet]}). T2I-Adapter {iou[t2i_adapter]} ({equal_iou[t2i_adapter]}),
within 0.05 of ControlNet: {v[t2i_fidelity_fair].word} ({v[t2i_fidelity_fair].evidence}). ControlNet-XS
{iou[controlnet_xs]} ({equal_iou[controlnet_xs]}), within 0.05 of ControlNet: {v[xs_fidelity_fair].word}
({v[xs_fidelity_fair].evidence}). ControlNeXt {iou[controlnext]} ({equal_iou[controlnext]}); with its official
recipe {iou[controlnext_official]}, above the module alone: {v[controlnext_official].word}
({v[controlnext_official].evidence}).

**How fast.** Convergence step (the level {level}, counted from step 0): T2I-Adapter {step[t2i_adapter]},
ControlNet-XS {step[controlnet_xs]}. ControlNet {step[controlnet]} and ControlNeXt {step[controlnext]}, ControlNeXt
earlier: {v[controlnext_earlier_fair].word} ({v[controlnext_earlier_fair].evidence}; at the two other levels,
as shares of the way from the base alone to ground truth: {levels[controlnext_earlier_fair]}). Before any update ControlNeXt
scores {start[controlnext]} and ControlNet {start[controlnet]} (the base's: its zero convs add nothing yet), and
whatever of ControlNeXt's lies above ControlNet's is a head start of its random injection, not learning. Counted
from each one's own start, half of the rise is closed at step {half[controlnext]} by ControlNeXt and {half[controlnet]}
by ControlNet, ControlNeXt earlier: {v[controlnext_half_rise_fair].word} ({v[controlnext_half_rise_fair].evidence}).

**At equal compute**, after {equal_s} s of training on this CPU (a run the rule stopped earlier counts with its last
validation): ControlNet {at_equal[controlnet]}; T2I-Adapter {at_equal[t2i_adapter]}, within 0.05 of ControlNet:
{v[t2i_equal_compute].word} ({v[t2i_equal_compute].evidence}); ControlNet-XS {at_equal[controlnet_xs]}, within 0.05:
{v[xs_equal_compute].word} ({v[xs_equal_compute].evidence}); ControlNeXt {at_equal[controlnext]}, above ControlNet:
{v[controlnext_equal_compute].word} ({v[controlnext_equal_compute].evidence}).

**Image quality at the plateau**, KID x 1e3 with the perfect prompt: ControlNet {kid[controlnet]}, ControlNet-XS
{kid[controlnet_xs]}, XS better: {v[xs_quality_fair].word} ({v[xs_quality_fair].evidence}); T2I-Adapter
{kid[t2i_adapter]}, ControlNeXt {kid[controlnext]}.

**What to take away.**
- One learning rate for all mixes a design with how well it suits that rate: ControlNet's own fidelity is
  {equal_iou[controlnet]} at 1e-4 after 500 steps and {iou[controlnet]} at its own lr, trained to its plateau.
- The table above puts each paper's claim, judged under one recipe, beside its retest on fair terms. Of those
  judged on both sides, the verdicts that moved (under one recipe -> on fair terms): {moved}. Under one recipe,
  those were set by the recipe as much as by the design. The verdicts that held: {held}.
- T2I-Adapter stays below ControlNet at its own lr too ({iou[t2i_adapter]} against {iou[controlnet]}; within 0.05:
  {v[t2i_fidelity_fair].word}), so its gap here is the design's, not the recipe's; what it buys is a cheaper
  generated image (the cost tables above).
- ControlNet-XS, given its own lr and time, ends level with ControlNet on average ({iou[controlnet_xs]} against
  {iou[controlnet]}, and KID {kid[controlnet_xs]} against {kid[controlnet]}) with far fewer trainable parameters
  (the cost tables above); within 0.05 is {v[xs_fidelity_fair].word} and better image quality {v[xs_quality_fair].word}: three
  seeds do not settle either.
- ControlNeXt reaches the stated level first ({v[controlnext_earlier_fair].word}; at the other levels
  {levels[controlnext_earlier_fair]}), also counted from its own head start
  ({v[controlnext_half_rise_fair].word}), but at its own lr it then rises slowly: after {equal_s} s of training it
  is at {at_equal[controlnext]} against ControlNet's {at_equal[controlnet]} (above ControlNet:
  {v[controlnext_equal_compute].word}), and it ends at {iou[controlnext]}. Its official recipe, part of the base
  trained too, ends at {iou[controlnext_official]} (above the module alone: {v[controlnext_official].word}).
"""
if designs.fair:
    designs.fair.reading(fair_template, **designs.fair_facts())
else:
    print("the fair reading needs the runs (pending)")

