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
# # Guess mode: connection scales without a prompt
#
# Guess mode (official 1.1 code, diffusers' `guess_mode=True`): no prompt, the control only in the
# conditional branch of CFG, and the 13 connections scaled down towards the high-resolution ones. The
# official code uses w_i = 0.825 ** (12 - i); diffusers uses logspace(-1, 0, 13), close to but not equal to it
# (`cnref.paper.control.connection_scales`). Compared here with uniform scales, at beta 3 and 9, on the outline
# ControlNets.
#
# **Device and time:** full mode reads the committed results in `experiments/studies/cpu/guess/` (seconds).
# Making them needs the trained scene ControlNets (notebook 14), then
# `python -m cnref study guess --preset cpu --seeds 0 1 2`: 6 settings x 64 held-out scenes x 3 trained
# seeds, DDIM 10 steps, on 2 CPU cores a few minutes; finished seeds are skipped. Smoke mode (`CNREF_SMOKE=1`,
# CI) trains the scene ControlNets 4 steps on the smoke base and runs the study on them (seconds).

# %%
import matplotlib.pyplot as plt

from cnref.views import figures, images, tables
from cnref.views.notebook import StudyReport, smoke_mode

rep = StudyReport.smoke("guess") if smoke_mode() else StudyReport("guess", "cpu")
rs, root = rep.results, rep.root
rep.describe()
from cnref.paper.control import connection_scales
for k in ("uniform", "guess_official", "guess_diffusers"):
    print(f"{k:<16}", " ".join(f"{w:.3f}" for w in connection_scales(k).tolist()))

# %%
KINDS = ("uniform", "guess_official", "guess_diffusers")
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
for ax, key in zip(axes, ("edge_f1", "color_ok")):
    for k, style in zip(KINDS, ({}, {"marker": "o"}, {"ls": "--", "marker": "x", "ms": 9})):
        figures.plot_sweep(ax, rs, [f"{k}/beta3", f"{k}/beta9"], [3, 9], key, k).set(**style)
    ax.set_xlabel("guidance scale beta"); ax.set_ylabel(figures.metric_label(key))
    ax.legend(fontsize=7)
axes[0].set_title("edge F1: guess mode holds the outline as beta grows\n(the two guess formulas lie on one line)")
axes[1].set_title("colours right (share; no prompt names them)")
plt.tight_layout(); plt.show()
print(tables.study_table(rs))

# %%
fig = images.show_study_grid(rs[0], [f"{k}/beta9" for k in KINDS], root); plt.show()

# %% [markdown]
# ## Verdict
# Each claim compares two settings over the trained seeds by the rule of `cnref.lab.verdict` (complete separation
# of the seeds in the expected direction; an equality is confirmed only when the 90% interval of the difference lies within its tolerance). Nothing here is typed in.

# %%
verdicts = rep.verdicts()

# %% [markdown]
# ## Reading
# What the figures and verdicts above say, with every figure filled in from the results (`rep.reading`).

# %%
rep.reading("""
**diffusers' guess-mode scales and the official ones behave alike**: edge F1 {v[diffusers_as_official].a} against {v[diffusers_as_official].b} at
beta 9 ({v[diffusers_as_official].word}, {v[diffusers_as_official].evidence}). The two formulas are nearly the same curve: both fall geometrically from the
middle block's full scale to about a tenth at the first connection, weakening the fine connections and keeping
the coarse ones. Whether guess mode gives better images than uniform scales with no prompt is judged in
notebook 20, on a quality metric that sees where the shapes are (FID, kept in the result files, averages over
positions and is blind to much of what the scales change).

**What to take away.**
- Guess mode drops the prompt and scales the connections from about a tenth at the finest to 1 at the middle
  block; diffusers' and the official formulas are nearly the same curve, and equal in edge F1 within the
  tolerance: {v[diffusers_as_official].word}.

**Exercise** (seconds): print `connection_scales("guess_official")` and `connection_scales("guess_diffusers")`
(`cnref.paper.control`) side by side. Where do they differ most, and by how much?
""");
