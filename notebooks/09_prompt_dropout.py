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
# # Prompt dropout: 50% empty prompts (the paper) vs none (the official 1.0 code)
#
# Section 3.3: "we randomly replace 50% text prompts c_t with empty strings. This approach increases
# ControlNet's ability to directly recognize semantics in the input conditioning images". The released
# training code has no such dropout. We train both and sample with no prompt (where the claim should show)
# and with the perfect prompt (where dropout should cost nothing).
#
# **Device and time:** full mode reads the committed results in `experiments/prompt_dropout/cpu/` (seconds). Making them: `python -m cnref run prompt_dropout --preset cpu
# --seeds 0 1 2 3 4`:
# 10 runs (2 variants x 5 seeds; seeds 3 and 4 were added because 3 seeds left the verdicts unclear) on 2 CPU
# cores (each run's wall time and device: the first table below); it skips finished runs, resumes an
# interrupted one and reuses the default run (the same config) from the other ablations. Smoke mode
# (`CNREF_SMOKE=1`, CI) trains every variant for a few steps on the tiny smoke base (seconds).

# %%
from cnref.views.notebook import AblationReport, smoke_mode

rep = AblationReport.smoke("prompt_dropout") if smoke_mode() else AblationReport("prompt_dropout", "cpu")

# %% [markdown]
# ## Fidelity and loss during training
# Mean over seeds, band = min-max. IoU on the fixed held-out set with the perfect prompt, every few steps;
# the lines: the ground truth, the base alone and the convergence level the verdicts use. The loss on a log axis.

# %%
rep.training()

# %% [markdown]
# ## Condition fidelity after training, under the paper's four prompt settings (Table 2's IoU)
# The disc re-detected in each sample against the exact one, on held-out conditions, with the perfect prompt, none,
# an insufficient and a conflicting one (notebook 05 shows each). Calibration rows: the ground-truth targets (upper
# bound) and the base without control (lower bound), same conditions and sampler. Every other metric of each run
# (prompt fidelity, FID) is in its result file, `experiments/prompt_dropout/cpu/`; image quality is judged in notebook 20
# only, by KID on (image, condition) pairs, because FID cannot see where the disc is.

# %%
rep.final(finding="helps_no_prompt")

# %% [markdown]
# ## Samples (seed 0, the same noise in every row)

# %%
rep.grid()

# %% [markdown]
# ## Verdict
# Computed from the results above by the rule stated in `cnref.lab.verdict` (complete separation of the
# seeds, one-sided Mann-Whitney test; an equality is confirmed only when the 90% interval of the difference lies within its tolerance).
# Nothing in this cell is typed in by hand.

# %%
verdicts = rep.verdicts()

# %% [markdown]
# ## Reading
# What the figures and verdicts above say, with every figure filled in from the results (`rep.reading`).

# %%
rep.reading("""
**Dropping the prompt half the time: the means point where the paper says, and three seeds do not decide.**
With no prompt at sampling, the run trained with 50% empty prompts ends at {iou_none[dropout_0.5]} against
{iou_none[dropout_0]} without dropout ({v[helps_no_prompt].word}, {v[helps_no_prompt].evidence}). With the
perfect prompt the order reverses, {iou[dropout_0.5]} against {iou[dropout_0]}, and "costs nothing" is
{v[free_with_prompt].word} ({v[free_with_prompt].evidence}). Together the means sketch the trade Sec. 3.3
motivates (a little fidelity with the prompt for robustness without it), but neither half is confirmed here:
read it as a direction to test with more seeds, not as a finding.

**What to take away.**
- The paper drops half the prompts so that the ControlNet learns to read the condition without them.
- Here "it helps with no prompt" is {v[helps_no_prompt].word} and "it costs nothing with the prompt" is
  {v[free_with_prompt].word}: read an unclear verdict as a direction to test, not as a finding.

**Exercise** (seconds): `drop_prompts(["a red disc"] * 1000, p=0.5, generator=torch.Generator().manual_seed(0))`
(`cnref.paper.loss.drop_prompts`): how many came back empty? How far from 500 can that count fall by chance,
and what does that say about a single batch of 64?
""");
