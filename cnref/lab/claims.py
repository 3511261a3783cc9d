"""Claims and the verdict rule: every claim of the paper that an ablation or a study tests, judged one way.

Every claim of the paper that an ablation tests is one `Claim` below: a metric compared between two groups
of runs (variants, each over seeds) in an expected direction. The verdict rule is stated once, here:

- "a > b" (or "a < b"): **confirmed** when the seeds separate completely in the expected direction (every
  seed of one group beyond every seed of the other: with 3 vs 3 seeds the one-sided Mann-Whitney p is then
  1/20 = 0.05, the smallest it can be); **refuted** when they separate the other way; otherwise
  **unclear** (the seeds overlap). The Mann-Whitney p is shown beside the verdict.
- "a = b" within a stated tolerance: two one-sided tests. **confirmed** when the 90% confidence interval of
  mean(a) - mean(b) (Welch's t; for a study's two settings on the same trained seeds, Student's t on the
  per-seed differences) lies inside (-tol, tol); **refuted** when it lies wholly outside [-tol, tol];
  otherwise **unclear**. The means alone never confirm an equality. The interval is shown beside the verdict.
- Fewer than 3 seeds on either side: **too few seeds**, whatever the numbers.
- A speed claim (`timing`): its n is fresh processes, each timing both modes interleaved and giving one ratio
  a/b of their median step times (steps within a process drift together, so they are not independent).
  **confirmed** when the 90% interval of the mean ratio lies wholly on the claimed side of 1, **refuted** when
  wholly on the other, otherwise **no difference measured**.

**Convergence step** (`cnref.lab.convergence`): where the validation curve first reaches a fixed level (a
quarter of the way from the base alone to the ground truth), interpolated; independent of the run's length. A run
that never reaches the level is censored at its last validation, a lower bound: it can put its group above the
other, never below, and an equality resting on it is unclear unless the lower bounds alone refute it.

**Suddenness** (`suddenness`, Fig. 4's row): the largest rise of a curve within any 100 steps, in units of what
noise alone gives over that many validations (robust std of one validation's change x sqrt(validations)).

A claim with `same_steps` compares runs of different lengths over the steps they share: each run's validation
curve is cut at the shorter run's last step (the lr is constant, so a longer run's first steps are what a run of
that length would have taken) and judged on it: IoU of that last validation (the validation prompt, 32 held-out
conditions) or the convergence step of the cut curve.
`python -m cnref report readme --preset cpu` prints the README's claims table from the committed results.

Why this module is long: the claims themselves (`CLAIMS`, `STUDY_CLAIMS`) are about a hundred lines of
data, kept next to the one rule that judges them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu
from scipy.stats import t as student_t

from ..checks import fail
from ..evaluate import QUALITY_SET
from .ablations import ABLATIONS
from .convergence import LEVEL, levels, suddenness, with_convergence
from .results import load_bounds, load_results, load_study, results_root

HELD_OUT = ("held_out/perfect", "held_out/insufficient", "held_out/conflicting", "held_out/none")
SETTINGS = (*HELD_OUT, "train/perfect")


def group(results: list[dict], ablation: str, preset: str) -> dict[str, list[dict]]:
    order = [v.name for v in ABLATIONS[ablation](preset)]
    by: dict[str, list[dict]] = {}
    for r in sorted(results, key=lambda r: (order.index(r["variant"]) if r["variant"] in order else 99, r["seed"])):
        by.setdefault(r["variant"], []).append(r)
    return by


def runs_of(ref: str, by: dict[str, list[dict]], preset: str, root: Path) -> list[dict]:
    """The runs a claim names: "variant" (this ablation), "ablation:variant", "bounds:base" /
    "bounds:base_scenes" (the Fill50K / scenes base alone, one pseudo-run per sampling seed, final_eval only), or
    "bench:<bench>:<mode>" (experiments/bench/<bench>_<preset>_processes.json, one pseudo-run per process)."""
    if ref.startswith("bench:"):       # "bench:<bench>:<mode>": one pseudo-run per fresh process of that bench
        _, bench, mode = ref.split(":")
        path = results_root(root) / "bench" / f"{bench}_{preset}_processes.json"
        procs = json.loads(path.read_text())["processes"] if path.exists() else []
        return [p[mode] for p in procs if mode in p]
    if ref in ("bounds:base", "bounds:base_scenes"):
        b = load_bounds(preset, root, "scenes" if ref.endswith("_scenes") else "fill50k")
        return [{"final_eval": rows, "seed": s} for s, rows in (b or {}).get("base", {}).items()]
    if ":" in ref:
        abl, var = ref.split(":")
        return [r for r in load_results(abl, preset, root) if r["variant"] == var]
    return by.get(ref, [])


def value(r: dict, key: str, setting: str | None) -> float:
    """A run's number: a final-evaluation metric (setting "held_out/*" = mean over the four held-out prompt
    settings), or a top-level figure such as convergence_step (None = never: after the last step)."""
    if key.startswith("median_"):    # a bench pseudo-run: one process's median step (or sample) time
        return float(r[key])
    if key == "s_per_step":      # wall seconds per step over the run, validation included
        h = r["history"]
        return (h[-1]["elapsed_s"] - h[0]["elapsed_s"]) / max(1, h[-1]["step"] - h[0]["step"])
    if key == "step_x_lr":       # the convergence step times the learning rate (the gate-opening prediction)
        return value(r, "convergence_step", None) * r["config"]["lr"]
    if key == "log_gate_at_step":    # log10 of the mean ||r_i|| / ||h_i|| at the convergence step's validation
        cs = r.get("convergence_step")
        h = next((h for h in r["history"] if cs is not None and h["step"] >= cs), r["history"][-1])
        return float(np.log10(np.mean(h["gate"]["ratio"])))
    if key.startswith("suddenness:"):   # suddenness of the IoU curve's rise, or of the loss curve's fall
        k = key.split(":")[1]
        return suddenness(r["history"], k, sign=-1.0 if k == "loss" else 1.0)
    if setting is None:
        v = r.get(key)
        if v is None and key == "convergence_step":      # never reached the level: censored at the last validation
            return float(r["history"][-1]["step"])
        return float(v)
    if setting == "held_out/*":
        return float(np.mean([r["final_eval"][s][key] for s in HELD_OUT]))
    return float(r["final_eval"][setting][key])


# ---------------------------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Claim:
    ablation: str              # the notebook / result folder it belongs to
    text: str                  # the paper's (or official docs') claim, in a few words
    paper: str                 # the paper's figure
    a: str                     # run groups (see runs_of)
    b: str
    expect: str                # ">" | "<" | "="
    key: str = "iou"
    setting: str | None = "held_out/perfect"
    tol: float = 0.0           # for "="
    same_steps: bool = False   # judge both groups on their validation curves up to the shorter run's last step
    key_b: str | None = None   # group b's figure, where it is another than a's (the same runs, two curves)
    headline: bool = False     # one of the README's short table of findings
    timing: bool = False       # a speed claim: a and b are the same fresh processes' median step times


CLAIMS = [
    Claim("sudden_convergence", "The model suddenly learns to follow the condition while the training loss shows "
          "no jump: the IoU's steepest 100 steps stand further above its noise than the loss's", "Fig. 4",
          "controlnet", "controlnet", ">", key="suddenness:iou", key_b="suddenness:loss", setting=None, headline=True),
    Claim("zero_init", "Zero convs beat Gaussian-initialised convs (std 0.02)", "Fig. 8b (images)",
          "zero", "gaussian_0.02", ">", setting="held_out/*", headline=True),
    Claim("zero_init", "Zero convs beat Gaussian-initialised convs (std 0.2)", "Fig. 8b (images)",
          "zero", "gaussian_0.2", ">", setting="held_out/*"),
    Claim("zero_init", "Zero convs converge earlier than Gaussian-initialised convs (std 0.02)",
          "Sec. 3.1 (no harmful noise at the start)", "zero", "gaussian_0.02", "<", key="convergence_step",
          setting=None),
    Claim("zero_init", "Gaussian init drops to about lite's level (IoU within 0.05)", "Fig. 8b vs 8c",
          "gaussian_0.02", "lite:lite", "=", setting="held_out/*", tol=0.05),
    Claim("lite", "Lite fails with no prompt: ControlNet > lite", "Fig. 8c (images)",
          "controlnet", "lite", ">", setting="held_out/none", headline=True),
    Claim("lite", "Lite fails with an insufficient prompt: ControlNet > lite", "Fig. 8c (images)",
          "controlnet", "lite", ">", setting="held_out/insufficient"),
    Claim("lite", "ControlNet > lite on condition fidelity (perfect prompt)", "Table 2: IoU 0.35 vs 0.32",
          "controlnet", "lite", ">", setting="held_out/perfect"),
    Claim("lite", "With a perfect prompt lite still learns the condition: above the base alone (500 steps)",
          "Fig. 8c (images)", "lite", "bounds:base", ">", setting="held_out/perfect"),
    Claim("lite", "... and with 4x the steps (2000)", "Fig. 8c (images)",
          "lite_x4", "bounds:base", ">", setting="held_out/perfect"),
    Claim("lite", "Lite fails with no prompt even with 4x the steps: ControlNet (500 steps) > lite_x4 (2000)",
          "Fig. 8c (images)", "controlnet", "lite_x4", ">", setting="held_out/none"),
    Claim("lite", "Lite is slower, not unable: ControlNet converges in fewer steps than lite_x4", "-",
          "controlnet", "lite_x4", "<", key="convergence_step", setting=None, headline=True),
    Claim("dataset_size", "1k training images already work: above the base alone", "Fig. 10 (images)",
          "n_1000", "bounds:base", ">", setting="held_out/perfect", headline=True),
    Claim("dataset_size", "1k images reach the unbounded set's fidelity (within 0.05)", "Fig. 10: 1k < 50k < 3m",
          "n_1000", "n_unbounded", "=", setting="held_out/perfect", tol=0.05),
    Claim("prompt_dropout", "50% prompt dropout helps with no prompt", "Sec. 3.3 (motivation)",
          "dropout_0.5", "dropout_0", ">", setting="held_out/none", headline=True),
    Claim("prompt_dropout", "50% prompt dropout costs nothing with the perfect prompt (within 0.05)", "-",
          "dropout_0.5", "dropout_0", "=", setting="held_out/perfect", tol=0.05),
    Claim("mid_only", "Middle-block-only ControlNet still learns the condition: above the base alone",
          "v1, 'Small-scale training'", "mid_only", "bounds:base", ">", setting="held_out/perfect"),
    Claim("mid_only", "Middle-only is faster per training step (one ratio per fresh process, each interleaving "
          "the two: python -m cnref bench train --processes 5)", "v1: about 1.6x faster", "bench:train:cnref_mid",
          "bench:train:cnref", "<", key="median_step_s", setting=None, timing=True),
    Claim("mid_only", "Full connections beat middle-only on condition fidelity", "-",
          "full", "mid_only", ">", setting="held_out/perfect"),
    Claim("batch_vs_steps", "The convergence step does not depend on batch size: 16 vs 64 (within 25 steps)",
          "docs/train.md", "batch_16", "batch_64", "=", key="convergence_step", setting=None, tol=25, headline=True),
    Claim("batch_vs_steps", "The convergence step does not depend on batch size: 256 vs 64 (within 25 steps; "
          "both 500 steps)", "docs/train.md", "batch_256_long", "batch_64", "=", key="convergence_step",
          setting=None, tol=25),
    Claim("batch_vs_steps", "At equal compute, a larger batch beats more steps: 256 x 125 > 16 x 2000 (the large "
          "batch stops before its jump, which the advice excludes)", "docs/train.md", "batch_256", "batch_16", ">",
          setting="held_out/perfect"),
    # the advice's own premise, both runs trained past their jump (judged on runs made before this row was written)
    Claim("batch_vs_steps", "At equal images, both past the jump, a larger batch beats more steps: 64 x 500 > "
          "16 x 2000", "docs/train.md", "batch_64", "batch_16", ">", setting="held_out/perfect"),
    Claim("batch_vs_steps", "A batch above 256 brings little: 1024 converges at the step 256 does (within 25 steps; "
          "curves cut at 1024's last step)", "docs/train.md", "batch_1024", "batch_256_long", "=",
          key="convergence_step", setting=None, tol=25, same_steps=True),
    Claim("batch_vs_steps", "A batch above 256 brings little: 1024's IoU at its last step within 0.05 of 256's at "
          "that step", "docs/train.md", "batch_1024", "batch_256_long", "=", setting=None, tol=0.05,
          same_steps=True),
    Claim("timestep_sampling", "High-t-biased timesteps converge earlier than uniform",
          "ControlNet issue #628", "high_t", "uniform", "<", key="convergence_step", setting=None, headline=True),
    Claim("timestep_sampling", "T2I-Adapter's cubic schedule (favours large t) converges earlier than uniform",
          "T2I-Adapter (training note)", "cubic", "uniform", "<", key="convergence_step", setting=None),
    Claim("timestep_sampling", "#628's curriculum (t from [0.8T, T) at the start, uniform from step 250) converges "
          "earlier than uniform", "ControlNet issue #628", "curriculum", "uniform", "<", key="convergence_step",
          setting=None),
    Claim("hint_encoders", "The paper's hint encoder (4x4, ReLU) works as well as the code's (within 0.05), "
          "conditions at the image's resolution", "text vs code", "paper", "official", "=", setting="held_out/perfect",
          tol=0.05),
    # stated before its runs: at 4x both encoders have two stride-2 stages, the path the two descriptions differ on
    Claim("hint_encoders", "... and at 4x the image, where both encoders have their strided depth (within 0.05)",
          "text vs code", "paper_f4", "official_f4", "=", setting="held_out/perfect", tol=0.05),
    # diagnostics of the gpu preset's failure to converge (notebook 04): what differs from the cpu preset
    Claim("precision", "bf16 autocast converges at the step fp32 does (within 25 steps)",
          "- (diagnostic: the gpu preset trains in bf16)", "bf16", "fp32", "=", key="convergence_step",
          setting=None, tol=25),
    Claim("cond_factor", "Conditions at the image's resolution converge earlier than at 4x (official hint encoder)",
          "- (diagnostic: SD's conditions are at 8x)", "factor_1", "factor_4", "<", key="convergence_step",
          setting=None),
    Claim("cond_factor", "... and earlier than at 8x (SD's factor, the gpu preset's)",
          "- (diagnostic: SD's conditions are at 8x)", "factor_1", "factor_8", "<", key="convergence_step",
          setting=None),
    # why the convergence is sudden: the learning rate (stated before its runs; every run instrumented)
    Claim("learning_rate", "A larger learning rate converges in fewer steps: 3e-4 before 1e-4", "-",
          "lr_3e-4", "lr_1e-4", "<", key="convergence_step", setting=None, headline=True),
    Claim("learning_rate", "... 1e-3 before 3e-4", "-", "lr_1e-3", "lr_3e-4", "<", key="convergence_step", setting=None),
    Claim("learning_rate", "... 1e-4 before 3e-5", "-", "lr_1e-4", "lr_3e-5", "<", key="convergence_step", setting=None),
    Claim("learning_rate", "Gate opening: step x lr is constant, 3e-4 vs 1e-4 (within 0.008, ~30% of 275 x 1e-4)",
          "ControlNeXt (zero convs slow the start)", "lr_3e-4", "lr_1e-4", "=", key="step_x_lr", setting=None,
          tol=0.008),
    Claim("learning_rate", "Gate opening: step x lr is constant, 3e-5 vs 1e-4 (within 0.008)",
          "ControlNeXt (zero convs slow the start)", "lr_3e-5", "lr_1e-4", "=", key="step_x_lr", setting=None,
          tol=0.008),
    Claim("learning_rate", "Gate opening: the residual / feature ratio at the jump is the same at 3e-4 and 1e-4 "
          "(log10 within 0.18, a factor 1.5)", "ControlNeXt (zero convs slow the start)", "lr_3e-4", "lr_1e-4",
          "=", key="log_gate_at_step", setting=None, tol=0.18),
    # the learning rate x batch interaction, added because seed 0 of lr_3e-4 and lr_1e-3 showed the lr moves the
    # step (stated before its runs): does a 3x lr move the step at batch 16 as the gate predicts at batch 64?
    Claim("learning_rate", "At batch 16 too, 3e-4 converges before 1e-4", "-", "lr_3e-4_batch_16",
          "batch_vs_steps:batch_16", "<", key="convergence_step", setting=None),
    Claim("learning_rate", "Gate opening at batch 16: step x lr is constant, 3e-4 vs 1e-4 (within 0.013, ~30% of "
          "422 x 1e-4)", "ControlNeXt (zero convs slow the start)", "lr_3e-4_batch_16", "batch_vs_steps:batch_16",
          "=", key="step_x_lr", setting=None, tol=0.013),
    # why the convergence is sudden: the published explanations (stated before their runs)
    Claim("injection", "ControlNeXt: cross normalisation (s = 0.35) converges earlier than zero convolutions",
          "ControlNeXt (zero convs slow the start)", "crossnorm", "zero", "<", key="convergence_step", setting=None, headline=True),
    Claim("injection", "... and keeps the condition fidelity (IoU within 0.05 of zero convs, perfect prompt)",
          "ControlNeXt", "crossnorm", "zero", "=", tol=0.05),
    Claim("hint_embedder", "CtrLoRA: a pretrained condition embedder (the base's first layers, trained) converges "
          "earlier than a random one", "CtrLoRA (pretrained embedder)", "base_trainable", "random", "<",
          key="convergence_step", setting=None),
    Claim("hint_embedder", "... and kept frozen, too", "CtrLoRA (pretrained embedder)", "base_frozen", "random", "<",
          key="convergence_step", setting=None),
    # ControlNet's successors on the same base, data and recipe (stated before their runs; X = 0.05 IoU)
    Claim("successors", "T2I-Adapter stays within 0.05 IoU of ControlNet's condition fidelity (perfect prompt)",
          "T2I-Adapter: 'slightly worse' than ControlNet", "t2i_adapter", "controlnet", "=", tol=0.05, headline=True),
    Claim("successors", "... and so with the cubic timesteps its paper trains with", "T2I-Adapter (cubic sampling)",
          "t2i_adapter_cubic", "controlnet", "=", tol=0.05),
    Claim("successors", "ControlNet-XS matches ControlNet's condition fidelity (within 0.05 IoU, perfect prompt) "
          "with a fifth of its trainable parameters", "ControlNet-XS", "controlnet_xs", "controlnet", "=", tol=0.05),
    Claim("successors", "ControlNeXt converges in fewer steps than ControlNet", "ControlNeXt: 'converges faster'",
          "controlnext", "controlnet", "<", key="convergence_step", setting=None),
    # stated before the successors' runs and their fresh-process bench (one process had measured 0.72x and 0.91x)
    Claim("successors", "ControlNet-XS gives better image quality than ControlNet (KID on (image, condition) pairs, "
          "256 held-out conditions, perfect prompt)", "ControlNet-XS: better FID", "controlnet_xs", "controlnet", "<",
          key="kid", setting=QUALITY_SET),
    Claim("successors", "T2I-Adapter costs less per generated image than ControlNet: it runs once per generation "
          "(20 DDIM steps, CFG 9; one ratio per fresh process: python -m cnref bench successors --processes 5)",
          "T2I-Adapter: runs once", "bench:successors:t2i_adapter", "bench:successors:controlnet", "<",
          key="median_sample_s", setting=None, timing=True),
    Claim("successors", "ControlNet-XS is faster per generated image than ControlNet (same bench)",
          "ControlNet-XS: 'about twice as fast'", "bench:successors:controlnet_xs", "bench:successors:controlnet",
          "<", key="median_sample_s", setting=None, timing=True),
    Claim("scenes", "A ControlNet learns scene outlines: edge F1 above the scenes base alone (perfect prompt)",
          "Fig. 7 (Canny, HED)", "outline", "bounds:base_scenes", ">", key="edge_f1"),
    Claim("scenes", "A ControlNet learns segmentation maps: edge F1 above the scenes base alone (perfect prompt)",
          "Fig. 7 (segmentation)", "segmentation", "bounds:base_scenes", ">", key="edge_f1"),
]


def stats(xs: list[float]) -> dict:
    a = np.asarray(xs, dtype=float)
    return {"n": len(a), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "values": [round(float(x), 4) for x in a]}


def welch_interval(xa: list[float], xb: list[float], conf: float = 0.90, paired: bool = False) -> tuple[float, float]:
    """The `conf` confidence interval of mean(a) - mean(b): Welch's t (unequal variances), or with `paired`
    (a and b measured on the same seeds) Student's t on the per-seed differences."""
    a, b = np.asarray(xa, dtype=float), np.asarray(xb, dtype=float)
    if paired:
        d = a - b
        half = student_t.ppf(0.5 + conf / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        return float(d.mean() - half), float(d.mean() + half)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    d, se = a.mean() - b.mean(), np.sqrt(va + vb)
    if se == 0:
        return float(d), float(d)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = student_t.ppf(0.5 + conf / 2, df) * se
    return float(d - half), float(d + half)


MIN_SEEDS = 3


def judge(c: Claim, xa: list[float], xb: list[float], censored_a=(), censored_b=(), paired: bool = False) -> dict:
    """The verdict rule of the module docstring, on the per-seed values of the two groups. censored_*: which
    values are only lower bounds (a run that never reached the convergence level: its last validated step).
    paired: a and b are two measurements of the same seeds (a study's two settings)."""
    if not xa or not xb:
        return {"verdict": "pending (no results)", "a": None, "b": None}
    sa, sb = stats(xa), stats(xb)
    ca, cb = sum(map(bool, censored_a)), sum(map(bool, censored_b))
    if ca:
        sa["censored"] = ca
    if cb:
        sb["censored"] = cb
    # a group's minimum is a valid lower bound even when censored; its maximum only when nothing is
    above, below = sa["min"] > sb["max"] and not cb, sa["max"] < sb["min"] and not ca
    out = {"a": sa, "b": sb, "diff": sa["mean"] - sb["mean"]}
    n = min(len(xa), len(xb))
    if n > 1:
        alt = {">": "greater", "<": "less"}.get(c.expect, "two-sided")
        out["p_mannwhitney"] = float(mannwhitneyu(xa, xb, alternative=alt).pvalue)
        out["ci90"] = welch_interval(xa, xb, paired=paired)
    if n < MIN_SEEDS:
        out["verdict"] = f"too few seeds (n = {n})"
    elif getattr(c, "timing", False):       # one ratio per fresh process; its interval against 1
        r = np.asarray(xa, dtype=float) / np.asarray(xb, dtype=float)
        half = student_t.ppf(0.95, len(r) - 1) * r.std(ddof=1) / np.sqrt(len(r))
        lo, hi = out["ratio_ci90"] = (float(r.mean() - half), float(r.mean() + half))
        good, bad = (lo > 1, hi < 1) if c.expect == ">" else (hi < 1, lo > 1)
        out["verdict"] = "confirmed" if good else "refuted" if bad else "no difference measured"
    elif c.expect in (">", "<"):
        good, bad = (above, below) if c.expect == ">" else (below, above)
        out["verdict"] = "confirmed" if good else "refuted" if bad else "unclear (seeds overlap)"
    elif ca or cb:      # lower bounds: only a separation that they cannot close refutes
        gap = sa["min"] - sb["max"] if above else sb["min"] - sa["max"] if below else 0.0
        out["verdict"] = "refuted" if gap > c.tol else "unclear (censored: runs that never converged within their steps)"
    else:       # two one-sided tests: the 90% interval of the difference inside (-tol, tol), or wholly outside
        lo, hi = out["ci90"]
        out["verdict"] = "confirmed" if -c.tol < lo and hi < c.tol else "refuted" if lo > c.tol or hi < -c.tol \
            else "unclear (interval reaches past the tolerance)"
    if out["verdict"].startswith("unclear (seeds") and (ca or cb):
        out["verdict"] = "unclear (censored: runs that never converged within their steps)"
    return out


def cut(r: dict, last: int) -> dict:
    """A run as its first `last` steps would have left it: the validation curve up to `last`, its last IoU and
    its convergence step (see the module docstring, same_steps)."""
    h = [x for x in r["history"] if x["step"] <= last]
    if h[-1]["step"] != last:
        fail("last", f"a validated step of run {r['variant']} seed {r['seed']}", last)
    return {**r, "config": {**r["config"], "steps": last}, "history": h, "iou": h[-1]["iou"]}


def evaluate_claim(c: Claim, preset: str, root: Path | None = None, by: dict | None = None,
                   share: float = LEVEL) -> dict:
    """A claim judged on the committed results, convergence steps at the level `share` (see LEVEL)."""
    by = by if by is not None else group(load_results(c.ablation, preset, root), c.ablation, preset)
    ra, rb = runs_of(c.a, by, preset, root), runs_of(c.b, by, preset, root)
    if not (ra and rb):
        return judge(c, [], [])
    if c.same_steps:
        last = min(r["config"]["steps"] for r in ra + rb)
        ra, rb = [cut(r, last) for r in ra], [cut(r, last) for r in rb]
    lv = levels(preset, root, share)
    ra, rb = ([with_convergence(r, lv[r["config"].get("data", "fill50k")]) if "history" in r else r for r in rs]
              for rs in (ra, rb))
    kb = c.key_b or c.key
    never = lambda rs, k: [k in ("convergence_step", "step_x_lr") and r.get("convergence_step") is None for r in rs]
    return judge(c, [value(r, c.key, c.setting) for r in ra], [value(r, kb, c.setting) for r in rb],
                 never(ra, c.key), never(rb, kb))


@dataclass(frozen=True)
class StudyClaim:
    """A claim about two settings of a study, judged per trained seed by `judge` (one rule for all).
    a / b: setting names, "multicontrolnet" (the diffusers check) or "const:<x>"."""
    study: str
    text: str
    paper: str
    a: str
    b: str
    expect: str
    key: str = "edge_f1"
    tol: float = 0.0
    headline: bool = False


# The claims as worded before the revised rules (experiments/verdicts/before_revision.txt) whose text changed:
# old text -> the claim that replaces it (None: dropped), and why
REVISED = {
    "ControlNet < lite on FID (perfect prompt)":
        (None, "dropped: FID cannot see where the disc is, and KID needs 256 samples of weights these runs did not keep"),
    "Middle-only is faster per training step (step times interleaved with full in one process: python -m cnref "
    "bench train)": ("Middle-only is faster per training step (one ratio per fresh process, each interleaving the two: "
                     "python -m cnref bench train --processes 5)", "a speed claim counts fresh processes, not timed steps"),
    "At equal compute, a larger batch beats more steps: 256 x 125 > 16 x 2000":
        ("At equal images, both past the jump, a larger batch beats more steps: 64 x 500 > 16 x 2000",
         "judged on runs that reach the jump, as the advice assumes"),
    "The paper's hint encoder (4x4, ReLU) works as well as the code's (within 0.05)":
        ("The paper's hint encoder (4x4, ReLU) works as well as the code's (within 0.05), conditions at the image's "
         "resolution", "equality by its 90% interval; the 4x comparison, where the encoders differ, is its own row"),
    "... at a cost in image quality (FID above both branches, beta 9)":
        ("No prompt: control in the conditional branch only costs image quality (KID above both branches, beta 9)",
         "image quality by KID on (image, condition) pairs at 256 scenes"),
    "CFG resolution weighting (w_i = 64/h_i) improves image quality over conditional-only (FID, beta 9, no prompt)":
        ("CFG resolution weighting, literal (w_i = 64/h_i >= 1), improves image quality over conditional-only (KID, "
         "beta 9, no prompt)", "both readings of Fig. 5d; image quality by KID"),
    "CFG resolution weighting keeps the condition (edge F1 within 0.05 of conditional-only, beta 9, no prompt)":
        ("CFG resolution weighting, literal, keeps the condition (edge F1 within 0.05 of conditional-only, beta 9, no "
         "prompt)", "both readings of Fig. 5d; equality by its 90% interval"),
    "Guess-mode scales give better images than uniform scales with no prompt (FID, beta 9)":
        ("Guess-mode scales give better images than uniform scales with no prompt (KID, beta 9)",
         "image quality by KID on (image, condition) pairs at 256 scenes"),
    "Over-strong control (s = 2) costs image quality: FID above s = 1":
        ("Over-strong control (s = 2) costs image quality: KID above s = 1",
         "image quality by KID on (image, condition) pairs at 256 scenes"),
}


def why_changed(c, old: str, new: str) -> str:
    """Which revised rule moves a claim's verdict from `old` to `new` (both as printed)."""
    if old.lower().startswith("pending"):
        return "runs made since"
    if new.startswith("too few seeds"):
        return "fewer than 3 seeds a side is 'too few seeds', never confirmed"
    if c.expect == "=":
        return "an equality needs its 90% interval inside the tolerance (the means alone confirmed or refuted it before)"
    if c.key in ("convergence_step", "step_x_lr"):
        return "the convergence step is a fixed level's crossing, whatever the run's length"
    return "new runs or recomputed results"


STUDY_CLAIMS = [
    StudyClaim("cfg", "No prompt: with the control in both branches CFG does nothing (beta 9 = beta 1)",
               "Sec. 3.4, Fig. 5b", "both/beta9/none", "both/beta1/none", "=", tol=0.005),
    StudyClaim("cfg", "No prompt: control in the conditional branch only makes guidance strong (edge F1 above "
               "both branches, beta 9)", "Fig. 5c", "cond_only/beta9/none", "both/beta9/none", ">", headline=True),
    StudyClaim("cfg", "CFG resolution weighting, literal, keeps the condition (edge F1 within 0.05 of "
               "conditional-only, beta 9, no prompt)", "Fig. 5d (literal reading)", "cond_only_weighted/beta9/none",
               "cond_only/beta9/none", "=", tol=0.05),
    StudyClaim("cfg", "CFG resolution weighting, normalised, keeps the condition (edge F1 within 0.05 of "
               "conditional-only, beta 9, no prompt)", "Fig. 5d (normalised reading)",
               "cond_only_normalized/beta9/none", "cond_only/beta9/none", "=", tol=0.05),
    StudyClaim("cfg", "With the perfect prompt, where the control goes matters little (edge F1 within 0.05, "
               "both vs conditional-only, beta 9)", "Sec. 3.4 (no prompt is the hard case)",
               "both/beta9/perfect", "cond_only/beta9/perfect", "=", tol=0.05),
    StudyClaim("guess", "diffusers' logspace(-1, 0, 13) guess scales behave like the official 0.825**(12-i) "
               "(edge F1 within 0.02, beta 9)", "diffusers vs official code", "guess_diffusers/beta9",
               "guess_official/beta9", "=", tol=0.02),
    StudyClaim("strength", "Condition fidelity rises with control strength: s = 0.5 above s = 0 (the base alone)",
               "diffusers' controlnet_conditioning_scale", "s0.5", "s0", ">"),
    StudyClaim("strength", "... and s = 1 above s = 0.5", "diffusers' controlnet_conditioning_scale",
               "s1", "s0.5", ">"),
    # image quality, where a claim rests on it: KID of (image, condition) pairs at 256 scenes per seed, its
    # calibration first (the rows above judged condition fidelity; these are FID's former rows)
    StudyClaim("quality", "KID sees placement: the targets paired with another scene's outline score worse than "
               "with their own", "calibration", "calibration/moved", "calibration/ground_truth", ">", key="kid"),
    StudyClaim("quality", "... and the base alone (s = 0) scores worse than the targets", "calibration",
               "strength/s0", "calibration/ground_truth", ">", key="kid"),
    StudyClaim("quality", "No prompt: control in the conditional branch only costs image quality (KID above both "
               "branches, beta 9)", "Fig. 5c", "cfg/cond_only/beta9/none", "cfg/both/beta9/none", ">", key="kid"),
    StudyClaim("quality", "CFG resolution weighting, literal (w_i = 64/h_i >= 1), improves image quality over "
               "conditional-only (KID, beta 9, no prompt)", "Fig. 5d (literal reading)",
               "cfg/cond_only_weighted/beta9/none", "cfg/cond_only/beta9/none", "<", key="kid"),
    StudyClaim("quality", "CFG resolution weighting, normalised (w_i = h_min/h_i <= 1: it reduces the guidance), "
               "improves image quality over conditional-only (KID, beta 9, no prompt)", "Fig. 5d (normalised reading)",
               "cfg/cond_only_normalized/beta9/none", "cfg/cond_only/beta9/none", "<", key="kid"),
    StudyClaim("quality", "Guess-mode scales give better images than uniform scales with no prompt (KID, beta 9)",
               "official guess mode", "guess/guess_official/beta9", "guess/uniform/beta9", "<", key="kid"),
    StudyClaim("quality", "Over-strong control (s = 2) costs image quality: KID above s = 1", "common advice",
               "strength/s2", "strength/s1", ">", key="kid"),
    StudyClaim("compose", "Plain sum keeps the condition: edge F1 within 0.05 of the outline ControlNet alone "
               "(matched scenes, no prompt)", "Fig. 6", "matched/none/sum", "matched/none/outline", "=", tol=0.05),
    StudyClaim("compose", "Plain sum needs no weighting: edge F1 above the 0.5/0.5 weighted sum (matched, no prompt)",
               "Sec. 3.4 (no extra weighting)", "matched/none/sum", "matched/none/weighted", ">", headline=True),
    StudyClaim("compose", "diffusers' MultiControlNetModel on the exported pair gives the same residuals "
               "(max |diff| <= 1e-5)", "diffusers", "multicontrolnet", "const:0", "=", key="max_abs_diff", tol=1e-5),
]


def study_value(r: dict, name: str, key: str) -> float:
    if name.startswith("const:"):
        return float(name.split(":", 1)[1])
    if name == "multicontrolnet":
        return float(r["multicontrolnet"][key])
    return float(r["results"][name][key])


def evaluate_study_claim(c: StudyClaim, preset: str, root: Path | None = None) -> dict:
    # a setting added to the study after these seeds were run: pending until they are rerun
    rs = [r for r in load_study(c.study, preset, root)
          if all(n.startswith("const:") or n == "multicontrolnet" or n in r["results"] for n in (c.a, c.b))]
    return judge(c, [study_value(r, c.a, c.key) for r in rs], [study_value(r, c.b, c.key) for r in rs], paired=True)
