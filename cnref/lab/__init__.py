"""The lab: experiments declared as data, run resumably, stored with provenance and judged by one rule.

- `ablations`: every training ablation as a list of named variants of a preset's config.
- `results`: where results live and how they are read (result files, samples, kept weights, bounds).
- `runner`: runs (or resumes, skips, reuses) the runs of an ablation and writes their result files.
- `studies`: inference-time sweeps over the trained scene ControlNets.
- `convergence`: reading a validation curve: the convergence step (a fixed level's crossing), suddenness.
- `claims`: every claim of the paper as a comparison of two groups, and the verdict rule.
- `compute`: how much wall time the committed results cost.
"""
