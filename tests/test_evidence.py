"""Evidence strength beside every verdict: the smallest p a number of seeds allows, two one-sided tests, the
Benjamini-Hochberg column, post hoc rows read from git history, and every row of the generated tables carrying
them."""
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from cnref.lab.verdict import benjamini_hochberg, smallest_p, tost_p, welch_interval
from cnref.lab.history import first_written, post_hoc

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("na, nb", [(3, 3), (3, 5), (5, 5), (2, 4)])
def test_smallest_p_is_the_exact_mann_whitney_p_of_complete_separation(na, nb):
    a, b = list(range(10, 10 + na)), list(range(nb))
    assert smallest_p(na, nb) == pytest.approx(mannwhitneyu(a, b, alternative="greater", method="exact").pvalue)


def test_benjamini_hochberg_against_adjusted_p_values():
    """Rejected exactly where the step-up adjusted p, min over j >= i of m p_(j) / j, is at most q."""
    g = np.random.default_rng(0)
    for _ in range(200):
        ps = list(g.uniform(0, 0.2, g.integers(1, 30)) ** 2)
        m, order = len(ps), np.argsort(ps)
        adj = np.minimum.accumulate((m * np.asarray(ps)[order] / np.arange(1, m + 1))[::-1])[::-1]
        want = np.empty(m, bool)
        want[order] = adj <= 0.05
        assert benjamini_hochberg(ps) == list(want)
    assert benjamini_hochberg([0.01, None, 0.5]) == [True, None, False]


def test_tost_p_below_005_exactly_when_the_90_interval_is_inside_the_tolerance():
    g = np.random.default_rng(1)
    for _ in range(300):
        a, b = g.normal(0, 1, 3), g.normal(g.normal(0, 0.5), 1, 4)
        tol = float(g.uniform(0.2, 3))
        lo, hi = welch_interval(a, b)
        assert (tost_p(a, b, tol) < 0.05) == (-tol < lo and hi < tol)
        lo, hi = welch_interval(a, b[:3], paired=True)
        assert (tost_p(a, b[:3], tol, paired=True) < 0.05) == (-tol < lo and hi < tol)


def git(repo: Path, *args, date: str | None = None):
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin", "HOME": str(repo)}
    if date:
        env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def test_a_claim_counts_from_when_it_stood_whole_in_the_source(tmp_path):
    """A claim split over two source lines, its second line reworded a day later: it counts from the rewording."""
    src = tmp_path / "cnref" / "claims.py"
    src.parent.mkdir()
    git(tmp_path, "init", "-q")
    old = 'CLAIMS = [\n    Claim("Zero convs beat Gaussian-initialised convs "\n          "on held-out conditions", "Fig. 8b"),\n]\n'
    src.write_text(old)
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "a", date="2026-01-01T00:00:00Z")
    src.write_text(old.replace("on held-out conditions", "on held-out conditions, perfect prompt"))
    git(tmp_path, "commit", "-qam", "b", date="2026-01-02T00:00:00Z")
    t = first_written(["Zero convs beat Gaussian-initialised convs on held-out conditions, perfect prompt",
                       "Zero convs beat Gaussian-initialised convs on held-out conditions", "never written"], tmp_path)
    day = 86400.0
    assert list(t.values()) == [1767225600.0 + day, 1767225600.0, None]
    run = lambda iso: {"provenance": {"time_utc": iso}}
    # written after both groups' runs started: post hoc; after only the reused baseline's: not
    assert post_hoc(1767225600.0 + day, [[run("2026-01-01T12:00:00Z")], [run("2026-01-01T13:00:00Z")]])
    assert not post_hoc(1767225600.0 + day, [[run("2025-12-01T00:00:00Z")], [run("2026-01-03T00:00:00Z")]])
    assert not post_hoc(None, [[{"seed": 0}]])              # pseudo-runs without provenance: no data time
    assert not post_hoc(None, [[run("2025-12-01T00:00:00Z")], []])   # one group not yet run: nothing to have seen


@pytest.mark.parametrize("page", ["README.md", "docs/claims.md"])
def test_every_row_carries_its_evidence(page):
    """n in the figures, an effect with its interval, p with its test, the FDR column: on every judged row."""
    rows = [r for r in (ROOT / page).read_text().splitlines()
            if r.startswith("| ") and "---" not in r and not r.startswith(("| claim ", "| convergence claim"))
            and r.count("|") >= 9]
    assert len(rows) > (10 if page == "README.md" else 60)
    for r in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", r.strip("|"))]     # a claim's own "\|" is escaped
        assert len(cells) == 8, r
        figures, verdict, eff, p, bh = cells[2:7]
        if "pending" in verdict or "too few" in verdict:
            continue
        assert "(n=" in figures or "n=" in figures, r
        assert re.search(r"\[.*, .*\]", eff), r
        assert re.match(r"(\d\.\d{3}|< 0\.001) \(", p), r
        assert bh in ("yes", "no"), r


def test_rank_p_is_the_exact_mann_whitney_p_and_takes_ties_and_censoring():
    """Without ties: scipy's exact Mann-Whitney p. With ties: the permutation distribution of scipy's U (ties
    count a half), brute force. Censored lower bounds: a run that never converged by step 300 ranks above every
    exact step below 300 and is undecidable against anything above."""
    from itertools import combinations
    from cnref.lab.verdict import rank_p
    g = np.random.default_rng(2)
    for _ in range(30):
        a, b = list(g.normal(0, 1, g.integers(2, 6))), list(g.normal(0.5, 1, g.integers(2, 6)))
        for alt in ("greater", "less"):
            assert rank_p(a, b, alternative=alt) == pytest.approx(
                mannwhitneyu(a, b, alternative=alt, method="exact").pvalue)
    a, b = [1.0, 2.0, 2.0], [2.0, 3.0, 3.0, 4.0]
    pooled, u = a + b, lambda x, y: mannwhitneyu(x, y).statistic
    splits = [[pooled[i] for i in s] for s in combinations(range(7), 3)]
    rest = [[pooled[i] for i in range(7) if i not in s] for s in combinations(range(7), 3)]
    want = np.mean([u(x, y) <= u(a, b) for x, y in zip(splits, rest)])
    assert rank_p(a, b, alternative="less") == pytest.approx(want)
    steps, never = [231.0, 240.0, 222.0], [300.0, 466.0, 450.0]       # the first of b never converged by 300
    assert rank_p(steps, never, [False] * 3, [True, False, False], "less") == pytest.approx(0.05)
    # 310 against an exact 300 is surely above it (p 2/20); against a run censored at 300, undecidable (p 1/20)
    assert rank_p([310.0, 240.0, 222.0], never, alternative="less") == pytest.approx(0.10)
    assert rank_p([310.0, 240.0, 222.0], never, [False] * 3, [True, False, False], "less") == pytest.approx(0.05)


def test_a_zero_initialised_runs_step_0_is_its_seeds_calibration_row():
    """The validation calibration is exactly what the curves start from: every committed run whose control adds
    zeros at initialisation validates at step 0 as the base alone under its own sampler seed (bf16 runs, which
    sample under autocast, to within 0.001)."""
    import json
    from cnref.mini.presets import config_from_dict
    cal = {d: json.loads((ROOT / "experiments" / "bounds" / "cpu" / f).read_text())
           for d, f in (("fill50k", "validation.json"), ("scenes", "validation_scenes.json"))}
    checked = 0
    for p in sorted((ROOT / "experiments").glob("*/cpu/*/seed*.json")):
        r = json.loads(p.read_text())
        if "history" not in r:
            continue
        c, data = config_from_dict(r["config"]), r["config"].get("data", "fill50k")
        if c.control.design not in ("controlnet", "controlnet_xs", "controlnet_base_embedder") or \
                getattr(c.control, "init", "zero") != "zero":
            continue
        row = cal[data]["base"][str(r["seed"])]
        tol = 1e-3 if c.precision == "bf16-mixed" else 0.0
        assert abs(r["history"][0][cal[data]["key"]] - row) <= tol, p
        checked += 1
    assert checked > 100
