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
# # Control strength
#
# One scale s on every connection (diffusers' `controlnet_conditioning_scale`, the official UI's "control
# strength"): s = 0 is the base alone, s = 1 what the ControlNet was trained with. Swept 0..2 with the
# perfect prompt, the control in both branches, beta = the engine's CFG scale, on the outline ControlNets.
#
# **Device and time:** full mode reads the committed results in `experiments/studies/<preset>/strength/` (seconds;
# `CNREF_PRESET=gpu` for gpu runs). Making them needs the trained scene ControlNets (notebook 13), then
# `python -m cnref.studies run strength --preset cpu --seeds 0 1 2`: 8 settings x 64 held-out scenes x 3 trained
# seeds, DDIM 10 steps, on 2 CPU cores a few minutes; finished seeds are skipped. Smoke mode (`CNREF_SMOKE=1`,
# CI) trains the scene ControlNets 4 steps on the smoke base and runs the study on them (seconds).

# %%
STUDY = "strength"
import matplotlib.pyplot as plt

from cnref import studies

rs, root, PRESET = studies.load_or_smoke(STUDY)
prov = rs[0]["provenance"]
print(f"{len(rs)} trained seeds; seed 0's ControlNets: {rs[0]['controlnets']}; device: {prov['device']}, "
      f"commit {prov['commit'][:10]}")

# %%
names = list(rs[0]["results"])
xs = [float(n[1:]) for n in names]
fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
for ax, key in zip(axes, ("edge_f1", "color_ok", "fid")):
    studies.plot_sweep(ax, rs, names, xs, key, "outline ControlNet")
    ax.set_xlabel("strength s"); ax.set_title(key); ax.legend(fontsize=7)
plt.tight_layout(); plt.show()
fig, ax = plt.subplots(figsize=(6, 4))
studies.plot_tradeoff(ax, rs, names, "strength 0 .. 2", marks=xs)
ax.set_title("condition fidelity vs image quality"); plt.tight_layout(); plt.show()
print(studies.study_table(rs))

# %%
fig = studies.show_study_grid(rs[0], names, root, conditions=("outline",)); plt.show()

# %% [markdown]
# ## Verdict
# Each claim compares two settings over the trained seeds by the rule of `cnref.report` (complete separation
# of the seeds in the expected direction; equality within a stated tolerance). Nothing here is typed in.

# %%
verdicts = studies.print_study_verdicts(STUDY, PRESET, root)
