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
# # Zero convolutions vs Gaussian initialisation (paper Fig. 8b)
#
# The paper's case for zero convolutions: at the start of training the ControlNet adds exactly nothing
# (y_c = y), so "harmful noise" cannot reach the deep features of the locked model. Fig. 8b replaces the
# zero convolutions by "standard convolution layers initialized with Gaussian weights" and shows the
# result degrade to about ControlNet-lite's level (Fig. 8c). The paper gives no std, so we try two:
# **0.02** (a common default) and **0.2**; every zero conv (Z1 after the hint encoder and the 13 output
# convs Z2) is drawn from N(0, std^2), weights and biases (`cnref.paper.controlnet.ControlNetConfig.init`).
#
# **Device and time:** full mode reads the committed results in `experiments/zero_init/cpu/` (seconds). Making them: `python -m cnref run zero_init --preset cpu
# --seeds 0 1 2`:
# 9 runs (3 variants x 3 seeds; the zero run is the default run) (each run's wall time and device: the first table below),
# and `--seeds 3 4 --variants zero gaussian_0.2`, added because 3 seeds left the std-0.2 verdict unclear; it skips finished runs, resumes an
# interrupted one and reuses the default run (the same config) from the other ablations. Smoke mode
# (`CNREF_SMOKE=1`, CI) trains every variant for a few steps on the tiny smoke base (seconds).

# %%
from cnref.views.notebook import AblationReport, smoke_mode

rep = AblationReport.smoke("zero_init") if smoke_mode() else AblationReport("zero_init", "cpu")

# %% [markdown]
# ## Fidelity and loss during training
# Mean over seeds, band = min-max. IoU on the fixed held-out set with the perfect prompt, every few steps;
# the lines: the ground truth, the base alone and the convergence level the verdicts use. The loss on a log axis.

# %%
rep.training(finding="earlier_than_gaussian_0.02")

# %% [markdown]
# ## Condition fidelity after training, under the paper's four prompt settings (Table 2's IoU)
# The disc re-detected in each sample against the exact one, on held-out conditions, with the perfect prompt, none,
# an insufficient and a conflicting one (notebook 05 shows each). Calibration rows: the ground-truth targets (upper
# bound) and the base without control (lower bound), same conditions and sampler. Every other metric of each run
# (prompt fidelity, FID) is in its result file, `experiments/zero_init/cpu/`; image quality is judged in notebook 20
# only, by KID on (image, condition) pairs, because FID cannot see where the disc is.

# %%
rep.final(finding="beats_gaussian_0.02")

# %% [markdown]
# ## Samples (seed 0, the same noise in every row)

# %%
rep.grid()

# %% [markdown]
# ## Verdict
# Computed from the results above by the rule stated in `cnref.lab.verdict`, the same for every claim of the book.
# Nothing in this cell is typed in by hand. This is the first notebook that judges claims, so here is the rule.
# With per-seed values $a_1..a_{n_a}$ and $b_1..b_{n_b}$ (at least 3 a side):
#
# - an order, "a > b": **confirmed** when the seeds separate completely, $\min_i a_i > \max_j b_j$; **refuted**
#   when they separate the other way; otherwise unclear. Beside it, the one-sided Mann-Whitney $p$, whose
#   smallest value is $1 / \binom{n_a + n_b}{n_a}$ (0.05 for 3 against 3, 0.004 for 5 against 5);
# - an equality within a tolerance $\delta$: **confirmed** when the 90% interval of the difference (Welch),
#
#   $$\bar a - \bar b \pm t_{0.95,\,\nu} \sqrt{s_a^2 / n_a + s_b^2 / n_b},$$
#
#   lies inside $(-\delta, \delta)$; **refuted** when it lies wholly outside; otherwise unclear.
#
# A run that never reached the convergence level counts as a lower bound (censored) in both tests.

# %%
from cnref.lab.verdict import judge, mean_difference, welch_interval
from cnref.views.notebook import listing

listing(mean_difference, welch_interval, judge)

# %%
verdicts = rep.verdicts()

# %% [markdown]
# ## Reading
# What the figures and verdicts above say, with every figure filled in from the results (`rep.reading`).

# %%
rep.reading("""
**Zero convolutions end higher; what Gaussian initialisation changes is the shape of the curve.** Over the four
held-out prompt settings zero convolutions end at {v[beats_gaussian_0.02].a} against {v[beats_gaussian_0.02].b} with Gaussian std 0.02
({v[beats_gaussian_0.02].word}, {v[beats_gaussian_0.02].evidence}), and against {v[beats_gaussian_0.2].b} with std 0.2 ({v[beats_gaussian_0.2].word}, {v[beats_gaussian_0.2].evidence}). With
std 0.02 the jump comes later and its step spreads widely over the seeds: {step[gaussian_0.02]} against
{step[zero]} ({v[earlier_than_gaussian_0.02].word}, {v[earlier_than_gaussian_0.02].evidence}). With std 0.2 the curves look different in kind: the training loss
starts many times higher (the random residuals disturb the locked decoder, the "harmful noise" of Sec. 3.1), the
IoU starts below the base's and climbs steadily with no jump, crossing the level early ({step[gaussian_0.2]})
but ending lower and more scattered.

**The paper's Fig. 8b and ours differ in degree.** The paper shows Gaussian initialisation falling to about
ControlNet-lite's level. Here it does not: the Gaussian runs still learn the condition and end far above lite at
equal steps ({v[gaussian_at_lite_level].word}, {v[gaussian_at_lite_level].evidence}). At this scale the trainable copy recovers from a noisy start; what
zero convolutions buy is a clean start, a reliable jump and a smaller spread, not the ability to learn.

**What to take away.**
- Zero convolutions make the untrained ControlNet the identity; against Gaussian std 0.02 they end higher
  ({v[beats_gaussian_0.02].word}) and converge earlier ({v[earlier_than_gaussian_0.02].word}).
- Against std 0.2 the end is {v[beats_gaussian_0.2].word}: what large random weights change first is the curve's
  shape (a noisy start, no jump).
- The paper's "Gaussian falls to lite's level" is {v[gaussian_at_lite_level].word} at this scale.

**Exercise** (seconds a run): `python -m cnref run zero_init --preset smoke --variants zero gaussian_0.2 --seeds 0`
trains both for 4 steps on the tiny smoke base. Compare the loss of their first step in the progress bars: which
starts higher, and which identity of notebook 01 says why? Then try the rule itself:
`judge(Claim("a above b", "-", "a", "b", ">"), [3, 4, 5], [1, 2, 2.5])` (`cnref.lab.verdict.judge`,
`cnref.lab.declare.Claim`); move one value so that the seeds overlap, and read the verdict and its p.
""");
