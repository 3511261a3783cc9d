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
# # Composing two ControlNets (paper Sec. 3.4, Fig. 6)
#
# The paper composes ControlNets by adding their residuals, "no extra weighting or linear interpolation"
# (`cnref.paper.control.compose`). Here the outline ControlNet and the segmentation ControlNet of the same seed
# run together: on **matched** conditions (both of one scene) and on **conflicting** ones (the outline of
# one scene, the segmentation map of another), by plain sum and by a 0.5 / 0.5 weighted sum, against each
# alone. Condition fidelity is measured against each scene the output could follow. The same composition
# through diffusers' `MultiControlNetModel` (the two ControlNets exported with `cnref.paper.interop`) is
# checked to give the same residuals.
#
# **Device and time:** full mode reads the committed results in `experiments/studies/cpu/compose/` (seconds).
# Making them needs the trained scene ControlNets (notebook 14), then
# `python -m cnref study compose --preset cpu --seeds 0 1 2`: 10 settings x 64 held-out scenes x 3 trained
# seeds, DDIM 10 steps, on 2 CPU cores a few minutes; finished seeds are skipped. Smoke mode (`CNREF_SMOKE=1`,
# CI) trains the scene ControlNets 4 steps on the smoke base and runs the study on them (seconds).

# %%
import matplotlib.pyplot as plt

from cnref.views import images, tables
from cnref.views.notebook import StudyReport, smoke_mode

rep = StudyReport.smoke("compose") if smoke_mode() else StudyReport("compose", "cpu")
rs, root = rep.results, rep.root
rep.describe()
for r in rs:
    print(f"seed {r['seed']}: MultiControlNetModel vs cnref.compose, max |diff| of the residuals "
          f"{r['multicontrolnet']['max_abs_diff']:.2e} (largest residual {r['multicontrolnet']['max_abs_residual']:.2f})")

# %% [markdown]
# ## Matched conditions
# Edge F1 against the scene both conditions come from; colours of the scene (with its prompt).

# %%
matched = [n for n in rs[0]["results"] if n.startswith("matched/")]
print(tables.study_table(rs, names=matched))

# %% [markdown]
# ## Conflicting conditions
# The outline of scene A with the segmentation of scene B, no prompt: `edge_f1` against scene A (the
# outline's), `other_edge_f1` against scene B (the segmentation's).

# %%
conflict = [n for n in rs[0]["results"] if n.startswith("conflicting/")]
print(tables.study_table(rs, keys=("edge_f1", "other_edge_f1"), names=conflict))
fig, ax = plt.subplots(figsize=(7, 3.4))
for i, n in enumerate(conflict):
    for j, key in enumerate(("edge_f1", "other_edge_f1")):
        vals = [r["results"][n][key] for r in rs]
        ax.bar(i * 3 + j, sum(vals) / len(vals), alpha=0.5, color=("tab:blue", "tab:orange")[j],
               label=("vs outline's scene", "vs segmentation's scene")[j] if i == 0 else None)
        ax.plot([i * 3 + j] * len(vals), vals, "k.")
ax.set_xticks([i * 3 + 0.5 for i in range(len(conflict))], [n.split("/")[-1] for n in conflict])
ax.set_ylabel("edge F1"); ax.legend(fontsize=8); ax.set_title("conflicting conditions (dots: seeds)")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Samples (trained seed 0)

# %%
fig = images.show_study_grid(rs[0], matched[:4] + conflict, root); plt.show()

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
**Two ControlNets compose by a plain sum, as Fig. 6 shows.** On matched conditions the sum of the outline and
segmentation ControlNets' residuals does not lose the condition: edge F1 {v[sum_keeps].a} against {v[sum_keeps].b} for the
outline ControlNet alone. The rule says {v[sum_keeps].word} ({v[sum_keeps].evidence}) because the sum is *better* than either
alone by more than the tolerance allows for "equal": two consistent conditions reinforce each other. Halving
each weight costs fidelity ({v[sum_beats_weighted].b} against the sum's {v[sum_beats_weighted].a}; {v[sum_beats_weighted].word}, {v[sum_beats_weighted].evidence}), so no
extra weighting is needed, as Sec. 3.4 says. On conflicting conditions (outline of one scene, segmentation of
another) the samples follow a mixture of both scenes: edge F1 {m[conflicting/none/sum][edge_f1]} against the
outline's scene and {m[conflicting/none/sum][other_edge_f1]} against the segmentation's (the grid outlines both
conditions, in two colours). diffusers' MultiControlNetModel, given the exported pair, reproduces our composition's residuals exactly (an
identity the test suite checks, `tests/test_studies.py`, not a claim).

**What to take away.**
- Several ControlNets compose by summing their residuals; on matched conditions "the sum keeps the condition"
  is {v[sum_keeps].word}, because the sum does better than either alone.
- The plain sum beats halving each weight ({v[sum_beats_weighted].word}): no extra weighting is needed.

**Exercise** (seconds): over notebook 02's ControlNet, make two controls from two random conditions and check that
`compose([a, b])` (`cnref.paper.control`) equals `a + b` residual by residual, and that
`compose([a, b], [0.5, 0.5])` is their mean.
""");
