"""The verdict rule: every claim of the paper that an ablation or a study tests, judged one way.

Every claim is a `Claim` (or a `StudyClaim`) declared beside the ablation or study whose runs it judges
(cnref.lab.ablations, cnref.lab.studies): a metric compared between two groups of runs (variants, each over
seeds) in an expected direction. `CLAIMS` and `STUDY_CLAIMS` gather them, in the order they are declared. The
verdict rule is stated once, here:

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
quarter of the way from the base alone to the ground truth, both on the run's own validation), interpolated;
independent of the run's length. A run that never reaches the level is censored at its last validation, a lower
bound: it can put its group above the other, never below, and an equality resting on it is unclear unless the
lower bounds alone refute it. The rank test's p is exact (`rank_p`: Gehan's, which takes lower bounds and ties).

**Against a ramp** (b = "ramp", `judge_ramp`): each run's `rise_share` (how much of a curve's rise its steepest
100 steps hold, beyond a steady ramp's share) against simulated ramps with the same rise and the run's own
measured validation noise; confirmed when every run beats its ramps' 95th percentile, refuted when none does.

A claim with `same_steps` compares runs of different lengths over the steps they share: each run's validation
curve is cut at the shorter run's last step (the lr is constant, so a longer run's first steps are what a run of
that length would have taken) and judged on it: IoU of that last validation (the validation prompt, 32 held-out
conditions) or the convergence step of the cut curve.
`python -m cnref report readme --preset cpu` prints the README's claims table from the committed results.

Why this module is long: the rule's parts (the runs a claim names, the per-run figures, the two tests, the cut
curves, the censoring) and the record of how earlier wordings were revised are kept together, so that the
whole rule reads in one place.
"""
from __future__ import annotations

import json
from itertools import combinations
from math import comb
from pathlib import Path

import numpy as np
from scipy.stats import chi2
from scipy.stats import t as student_t

from ..checks import fail
from .ablations import ABLATIONS
from .declare import Claim, StudyClaim
from .convergence import LEVEL, calibrations, ramp_test, rise_share, with_convergence
from .results import load_bounds, load_results, load_study, results_root
from .studies import STUDIES

HELD_OUT = ("held_out/perfect", "held_out/insufficient", "held_out/conflicting", "held_out/none")
SETTINGS = (*HELD_OUT, "train/perfect")
CLAIMS = [c for a in ABLATIONS.values() for c in a.claims]
STUDY_CLAIMS = [c for s in STUDIES.values() for c in s.claims]


def group(results: list[dict], ablation: str, preset: str) -> dict[str, list[dict]]:
    order = [v.name for v in ABLATIONS[ablation].variants(preset)]
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
        res = json.loads(path.read_text()) if path.exists() else {"processes": []}
        return [{**p[mode], "provenance": res.get("provenance", {})} for p in res["processes"] if mode in p]
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
    if key == "log_gate_at_step":    # log10 of the mean ||r_i|| / ||h_i||, interpolated at the convergence step
        g = [(h["step"], float(np.mean(h["gate"]["ratio"]))) for h in r["history"] if "gate" in h]
        cs = r.get("convergence_step")      # never reached: the last validation's, censored with the step
        return float(np.log10(np.interp(cs, *zip(*g)) if cs is not None else g[-1][1]))
    if key.startswith("rise_share:"):   # how concentrated a curve's rise (the loss: its fall) is, beyond a ramp's
        k = key.split(":")[1]
        return rise_share(r["history"], k, sign=-1.0 if k == "loss" else 1.0)
    if setting is None:
        v = r.get(key)
        if v is None and key == "convergence_step":      # never reached the level: censored at the last validation
            return float(r["history"][-1]["step"])
        return float(v)
    if setting == "held_out/*":
        return float(np.mean([r["final_eval"][s][key] for s in HELD_OUT]))
    return float(r["final_eval"][setting][key])


def stats(xs: list[float]) -> dict:
    a = np.asarray(xs, dtype=float)
    return {"n": len(a), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "values": [round(float(x), 4) for x in a]}


def mean_difference(xa: list[float], xb: list[float], paired: bool = False) -> tuple[float, float, float]:
    """mean(a) - mean(b), its standard error and degrees of freedom: Welch's (unequal variances), or with `paired`
    (a and b measured on the same seeds) Student's on the per-seed differences."""
    a, b = np.asarray(xa, dtype=float), np.asarray(xb, dtype=float)
    if paired:
        d = a - b
        return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))), len(d) - 1
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else float("nan")
    return float(a.mean() - b.mean()), float(se), float(df)


def welch_interval(xa: list[float], xb: list[float], conf: float = 0.90, paired: bool = False) -> tuple[float, float]:
    """The `conf` confidence interval of mean(a) - mean(b) (`mean_difference`)."""
    d, se, df = mean_difference(xa, xb, paired)
    if se == 0:
        return d, d
    half = student_t.ppf(0.5 + conf / 2, df) * se
    return float(d - half), float(d + half)


def tost_p(xa: list[float], xb: list[float], tol: float, paired: bool = False) -> float:
    """Two one-sided tests of |mean(a) - mean(b)| < tol: the larger of the two one-sided t-test p (below 0.05
    exactly when the 90% interval lies inside (-tol, tol))."""
    d, se, df = mean_difference(xa, xb, paired)
    if se == 0:
        return 0.0 if abs(d) < tol else 1.0
    return float(max(student_t.sf((d + tol) / se, df), student_t.cdf((d - tol) / se, df)))


def rank_p(xa: list[float], xb: list[float], censored_a=(), censored_b=(), alternative: str = "greater") -> float:
    """The exact p of Gehan's generalisation of the Mann-Whitney test, which takes censored values and ties: over
    every split of the pooled values into groups of the two sizes, the share that score at least as far in the
    `alternative` direction as the observed one. A pair scores +1 when a's value is surely the larger, -1 when
    surely the smaller, 0 when tied or undecidable; a censored value (a lower bound) is surely larger only than an
    exact value below it. Without censoring or ties it is the exact Mann-Whitney p."""
    vals = [(float(x), bool(c)) for x, c in zip(xa, list(censored_a) or [False] * len(xa))] + \
           [(float(x), bool(c)) for x, c in zip(xb, list(censored_b) or [False] * len(xb))]
    def surely(u, v):        # +1: u surely above v, -1: surely below, 0: tied or undecidable
        return 1 if not v[1] and v[0] < u[0] else -1 if not u[1] and u[0] < v[0] else 0
    S = np.array([[surely(u, v) for v in vals] for u in vals])
    n, every = len(xa), range(len(vals))
    score = lambda a: S[np.ix_(list(a), [i for i in every if i not in a])].sum()
    obs, dist = score(range(n)), np.array([score(a) for a in combinations(every, n)])
    hit = {"greater": dist >= obs, "less": dist <= obs}.get(alternative, np.abs(dist) >= abs(obs))
    return float(hit.mean())


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest one-sided Mann-Whitney p that n_a against n_b values can give: 1 / C(n_a + n_b, n_a)."""
    return 1 / comb(n_a + n_b, n_a)


def benjamini_hochberg(ps: list[float | None], q: float = 0.05) -> list[bool | None]:
    """Which p survive Benjamini-Hochberg's false discovery rate q over the list (None where there is no p): the
    k smallest, k the largest rank with p_(k) <= q k / m."""
    have = sorted((p, i) for i, p in enumerate(ps) if p is not None)
    m = len(have)
    k = max((r for r, (p, _) in enumerate(have, 1) if p <= q * r / m), default=0)
    keep = {i for _, i in have[:k]}
    return [None if p is None else i in keep for i, p in enumerate(ps)]


def p_of(j: dict) -> tuple[float, str] | None:
    """The p beside a verdict, and its test: Fisher's combination of the ramp tests, the one-sided t test of a
    speed ratio, the two one-sided tests of an equality, or the one-sided Mann-Whitney test of an order."""
    for key, test in (("p_ramp", "ramp tests, Fisher; small: sudden"), ("p_ratio", "t, ratio vs 1"), ("p_tost", "TOST"),
                      ("p_mannwhitney", "Mann-Whitney")):
        if key in j:
            return j[key], test
    return None


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
        out["p_mannwhitney"] = rank_p(xa, xb, censored_a, censored_b, alt)
        out["ci90"] = welch_interval(xa, xb, paired=paired)
        if c.expect == "=":
            out["p_tost"] = tost_p(xa, xb, c.tol, paired)
    if n < MIN_SEEDS:
        out["verdict"] = f"too few seeds (n = {n})"
    elif getattr(c, "timing", False):       # one ratio per fresh process; its interval against 1
        r = np.asarray(xa, dtype=float) / np.asarray(xb, dtype=float)
        half = student_t.ppf(0.95, len(r) - 1) * r.std(ddof=1) / np.sqrt(len(r))
        lo, hi = out["ratio_ci90"] = (float(r.mean() - half), float(r.mean() + half))
        se = r.std(ddof=1) / np.sqrt(len(r))
        t = (r.mean() - 1) / se if se > 0 else np.inf * np.sign(r.mean() - 1) if r.mean() != 1 else 0.0
        out["ratio"], out["p_ratio"] = float(r.mean()), float(student_t.sf(t, len(r) - 1) if c.expect == ">"
                                                              else student_t.cdf(t, len(r) - 1))
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


def judge_ramp(c: Claim, runs: list[dict], alpha: float = 0.05) -> dict:
    """A claim that each run's curve rises more suddenly than a steady ramp (b = "ramp", key "rise_share:<curve>",
    expect ">"), or not (expect "<"): every run's curve against straight lines with its own rise and measured
    noise (`convergence.ramp_test`). ">": **confirmed** when every run's ramp-test p < alpha, **refuted** when none
    is ("<": the other way round), otherwise **unclear**; shown with Fisher's combination of the runs' p."""
    if not runs:
        return {"verdict": "pending (no results)", "a": None, "b": None}
    k = c.key.split(":")[1]
    tests = [ramp_test(r["history"], k, sign=-1.0 if k == "loss" else 1.0) for r in runs]
    ps = [t["p"] for t in tests]
    excess = [t["share"] - t["ramp_q95"] for t in tests]
    out = {"a": stats([t["share"] for t in tests]), "b": stats([t["ramp_q95"] for t in tests]),
           "diff": float(np.mean(excess)),
           "noise": [round(t["noise"], 4) for t in tests], "p_seeds": [round(p, 4) for p in ps],
           "p_ramp": float(chi2.sf(-2 * np.sum(np.log(ps)), 2 * len(ps)))}
    if len(runs) > 1:
        out["ci90"] = welch_interval(excess, [0.0] * len(excess), paired=True)
    if len(runs) < MIN_SEEDS:
        out["verdict"] = f"too few seeds (n = {len(runs)})"
    else:
        passed = sum(p < alpha for p in ps)       # ">": sudden in every run; "<": in none
        every, none = passed == len(ps), passed == 0
        good, bad = (every, none) if c.expect == ">" else (none, every)
        out["verdict"] = "confirmed" if good else "refuted" if bad else "unclear (seeds disagree)"
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
    if c.b == "ramp":
        return judge_ramp(c, ra)
    if not (ra and rb):
        return judge(c, [], [])
    if c.same_steps:
        last = min(r["config"]["steps"] for r in ra + rb)
        ra, rb = [cut(r, last) for r in ra], [cut(r, last) for r in rb]
    cal = calibrations(preset, root)
    ra, rb = ([with_convergence(r, cal[r["config"].get("data", "fill50k")], share) if "history" in r else r
               for r in rs] for rs in (ra, rb))
    kb = c.key_b or c.key
    at_step = ("convergence_step", "step_x_lr", "log_gate_at_step")      # figures read at the convergence step
    never = lambda rs, k: [k in at_step and r.get("convergence_step") is None for r in rs]
    j = judge(c, [value(r, c.key, c.setting) for r in ra], [value(r, kb, c.setting) for r in rb],
              never(ra, c.key), never(rb, kb), paired=c.key_b is not None and c.a == c.b)
    for side, rs, k in (("a", ra, c.key), ("b", rb, kb)):
        n = sum(bool(r.get("head_start")) for r in rs) if k in at_step else 0
        if n and j.get(side):
            j[side]["head_start"] = n           # at the level from the first validation: converged at step 0
    return j


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


def study_value(r: dict, name: str, key: str) -> float:
    return float(r["results"][name][key])


def evaluate_study_claim(c: StudyClaim, preset: str, root: Path | None = None) -> dict:
    # a setting added to the study after these seeds were run: pending until they are rerun
    rs = [r for r in load_study(c.study, preset, root)
          if all(n in r["results"] for n in (c.a, c.b))]
    return judge(c, [study_value(r, c.a, c.key) for r in rs], [study_value(r, c.b, c.key) for r in rs], paired=True)
