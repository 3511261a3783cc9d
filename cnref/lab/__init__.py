"""The lab: experiments declared as data, run resumably, stored with provenance and judged by one rule.

- `declare`: the vocabulary of a declaration: `Variant`, `Claim`, `StudyClaim`, `Ablation`, `Study`.
- `ablations`: every training ablation in one place: its variants of a preset's config, its claims, its notebook.
- `results`: where results live and how they are read (result files, samples, kept weights, bounds).
- `studies`: inference-time sweeps over the trained scene ControlNets, each with its claims and notebook.
- `convergence`: reading a validation curve: the convergence step (a fixed level's crossing), suddenness.
- `verdict`: the verdict rule (complete separation, the exact rank test with censoring, Welch's interval, TOST,
  the ramp test's combination) on the per-seed values of two groups of runs.
- `claims`: every declared claim, the runs it names and each run's figure, judged by `verdict`.
- `compute`: how much wall time the committed results cost.
- `runner`: runs (or resumes, skips, reuses) the runs of an ablation and writes their result files.

May import cnref.measure, cnref.mini, cnref.successors, cnref.paper and the shared modules; never cnref.views.
"""
