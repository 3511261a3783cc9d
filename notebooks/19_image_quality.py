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
# # Image quality that sees placement
#
# The paper judges image quality by FID (Table 3). Here FID cannot carry a verdict: it averages each feature
# map over the image, so a disc drawn in the wrong place scores as well as one in the right place, and at 64
# samples its covariance of 256 features is singular. The claims about image quality (Fig. 5c, Fig. 5d, guess
# mode, over-strong control) are judged instead by **KID** (Binkowski et al. 2018; torchmetrics'
# `KernelInceptionDistance`, unbiased at small n) on **(image, condition) pairs**: the locked base's feature
# maps pooled to a 4 x 4 grid, multiplied by the condition pooled to the same grid, so that the kernel is the
# product of an image kernel and a condition kernel and compares the joint distribution (`cnref.quality`).
# A right image paired with the wrong condition then scores worse.
#
# Before any claim rests on it the metric is calibrated on rows that need no model: the held-out targets with
# their own outlines (the best possible), the same targets paired with another scene's outline (right images in
# the wrong place), blurred targets, and noise; the base alone (control strength 0) is the fifth. Each trained
# seed is measured on its own 256 held-out scenes, so the calibration rows vary across seeds as the settings do.
#
# **Device and time:** full mode reads the committed results in `experiments/studies/cpu/quality/` (seconds).
# Making them needs the trained scene ControlNets (notebook 13), then
# `python -m cnref study quality --preset cpu --seeds 0 1 2`: 9 sampled settings x 256 held-out scenes x 3
# trained seeds, DDIM 10 steps; its time on 2 CPU cores is in the results (`wall_s`, printed below). Smoke mode
# (`CNREF_SMOKE=1`, CI) trains the scene ControlNets 4 steps on the smoke base and runs the study on them.

# %%
import matplotlib.pyplot as plt

from cnref.lab.studies import CALIBRATION
from cnref.views import figures, tables
from cnref.views.notebook import StudyReport, smoke_mode

rep = StudyReport.smoke("quality") if smoke_mode() else StudyReport("quality", "cpu")
rs, root = rep.results, rep.root
rep.describe()
print("wall time per seed (s):", [r["wall_s"] for r in rs])

# %% [markdown]
# ## Calibration and the settings the claims compare
# KID x 1e3 per seed (dots) and its mean (bar); lower is better. Edge F1 beside it: how well the images follow
# the outline they are paired with.

# %%
sampled = [n for n in rs[0]["results"] if n not in CALIBRATION]
names = [*CALIBRATION, *sampled]
fig, axes = plt.subplots(1, 2, figsize=(14, 4.6), sharey=True)
figures.plot_rows(axes[0], rs, names, "kid")
axes[0].set_title("image quality: KID of (image, condition) pairs")
figures.plot_rows(axes[1], rs, names, "edge_f1")
axes[1].set_title("condition fidelity: edge F1 with the paired outline")
plt.tight_layout(); plt.show()
print(tables.study_table(rs, keys=("kid", "edge_f1", "color_ok", "bg_ok"), names=names))

# %%
fig = figures.show_study_grid(rs[0], sampled, root); plt.show()

# %% [markdown]
# ## Verdict
# Each claim compares two rows over the trained seeds by the rule of `cnref.lab.claims` (complete separation of
# the seeds in the expected direction, one-sided Mann-Whitney p beside it). Nothing here is typed in.

# %%
verdicts = rep.verdicts()

# %% [markdown]
# ## Reading
# What the figures and verdicts above say, with every figure filled in from the results (`rep.reading`).

# %%
rep.reading("""
**Calibration.** The targets with their own outlines score {m[calibration/ground_truth][kid]}; paired with
another scene's outline the same images score {m[calibration/moved][kid]} ({v[0].verdict}, {v[0].evidence}),
blurred targets {m[calibration/blurred][kid]}, noise {m[calibration/noise][kid]}, and the base alone
{m[strength/s0][kid]} ({v[1].verdict}, {v[1].evidence}).

**The claims.** Conditional-only guidance against both branches (Fig. 5c): {v[2].a} against {v[2].b}
({v[2].verdict}, {v[2].evidence}). Fig. 5d's weighting against conditional-only, literal: {v[3].a} against
{v[3].b} ({v[3].verdict}, {v[3].evidence}); normalised: {v[4].a} ({v[4].verdict}, {v[4].evidence}). Guess-mode
scales against uniform ones: {v[5].a} against {v[5].b} ({v[5].verdict}, {v[5].evidence}). Strength 2 against
1: {v[6].a} against {v[6].b} ({v[6].verdict}, {v[6].evidence}).
""");
