"""The verdict rule: every claim of the paper that an ablation or a study tests is judged this one way, on the
per-seed values of two groups of runs (cnref.lab.claims finds the runs and their values).

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
"""
from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np
from scipy.stats import chi2
from scipy.stats import t as student_t

from .convergence import ramp_test
from .declare import Claim


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
        se = r.std(ddof=1) / np.sqrt(len(r))
        half = student_t.ppf(0.95, len(r) - 1) * se
        lo, hi = out["ratio_ci90"] = (float(r.mean() - half), float(r.mean() + half))
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
