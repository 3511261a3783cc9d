"""The lab: experiments declared as data, run resumably, stored with provenance and judged by one rule.

- `declare`: the vocabulary of a declaration: `Variant`, `Claim`, `StudyClaim`, `Ablation`, `Study`.
- `ablations`: every training ablation in one place: its variants of a preset's config, its claims, its notebook.
- `results`: where results live and how they are read (result files, samples, kept weights, bounds).
- `studies`: inference-time sweeps over the trained scene ControlNets, each with its claims and notebook.
- `convergence`: reading a validation curve: the convergence step (a fixed level's crossing), suddenness.
- `claims`: the verdict rule (judge, intervals, convergence, censoring) over every declared claim.
- `compute`: how much wall time the committed results cost.
- `runner`: runs (or resumes, skips, reuses) the runs of an ablation and writes their result files.

May import cnref.measure, cnref.mini, cnref.successors, cnref.paper and the shared modules; never cnref.views.
"""
