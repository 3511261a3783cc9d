"""The convergence step, the verdict rule and the claims, on synthetic curves and result files (no training)."""
import json
from dataclasses import asdict

import pytest

from cnref.lab.ablations import ABLATIONS
from cnref.measure.costs import KINDS
import numpy as np

from cnref.lab.claims import CLAIMS, SETTINGS, STUDY_CLAIMS, Claim, cut, evaluate_claim, group, value
from cnref.lab.verdict import (benjamini_hochberg, judge, judge_ramp, mean_difference, p_of, rank_p, smallest_p, stats,
                               tost_p, welch_interval)
from cnref.lab.convergence import (RAMPS, calibrations, convergence_step, fidelity_key, level_range, ramp_test,
                                   rise_share, run_level, with_convergence)
from cnref.lab.compute import compute_report
from cnref.lab.studies import CALIBRATION, settings
from cnref.views.tables import fmt, table


def claim(expect, tol=0.0):
    return Claim("t", "p", "a", "b", expect, tol=tol, ablation="x")


def test_complete_separation_is_mann_whitney_p_of_one_in_twenty():
    j = judge(claim(">"), [0.8, 0.7, 0.75], [0.3, 0.4, 0.35])
    assert j["verdict"] == "confirmed"
    assert j["p_mannwhitney"] == pytest.approx(1 / 20)          # exact U test, 3 vs 3, no ties
    assert judge(claim("<"), [0.8, 0.7, 0.75], [0.3, 0.4, 0.35])["verdict"] == "refuted"
    assert judge(claim(">"), [0.8, 0.3, 0.75], [0.3, 0.4, 0.35])["verdict"].startswith("unclear")


def test_equality_claims_use_the_stated_tolerance():
    assert judge(claim("=", 0.05), [0.70, 0.72, 0.71], [0.69, 0.74, 0.70])["verdict"] == "confirmed"
    assert judge(claim("=", 0.05), [0.9, 0.92, 0.91], [0.5, 0.52, 0.51])["verdict"] == "refuted"
    assert judge(claim("=", 0.05), [0.9, 0.3, 0.91], [0.5, 0.52, 0.51])["verdict"].startswith("unclear")


def test_every_claim_names_existing_variants(monkeypatch):
    from cnref.lab import ablations
    # the fair comparison declares a design's runs once the lr rule has chosen its lr: every design, here
    monkeypatch.setattr(ablations, "FAIR_LR", dict.fromkeys(ablations.SWEPT, 1e-4))
    for c in CLAIMS:
        names = {v.name for v in ABLATIONS[c.ablation].variants("cpu")}
        for ref in (c.a, c.b):
            if ref in ("bounds:base", "bounds:base_scenes") or ref == c.b == "ramp":    # a ramp: simulated per run
                continue
            if ref.startswith("bench:"):
                _, bench, mode = ref.split(":")
                assert mode in {"train": ("cnref", "cnref_mid", "diffusers", "plain", "cnref_adamw_loop"),
                                "successors": KINDS}[bench], ref
                continue
            abl, var = ref.split(":") if ":" in ref else (c.ablation, ref)
            assert var in {v.name for v in ABLATIONS[abl].variants("cpu")}, (c, ref, names)
        assert c.expect in (">", "<", "=")


def test_a_claim_across_ablations_compares_runs_that_differ_only_where_it_says():
    """The lr x batch claims judge lr_3e-4_batch_16 against batch_vs_steps' batch 16: same batch, data and model,
    other lr; the run length and validation spacing differ, which the fixed-level convergence step ignores."""
    a = next(v.cfg for v in ABLATIONS["learning_rate"].variants("cpu") if v.name == "lr_3e-4_batch_16")
    b = next(v.cfg for v in ABLATIONS["batch_vs_steps"].variants("cpu") if v.name == "batch_16")
    da, db = asdict(a), asdict(b)
    assert {k for k in da if da[k] != db[k]} == {"lr", "instrument", "steps", "val_every"}
    assert (a.lr, b.lr, a.batch_size, b.batch_size) == (3e-4, 1e-4, 16, 16)


def test_every_study_claim_names_existing_settings():
    from cnref.lab.gain import LEVEL_ROW
    for c in STUDY_CLAIMS:
        names = {s.name for s in settings(c.study, 3.0)} | set(CALIBRATION) | {LEVEL_ROW}
        for ref in (c.a, c.b):
            assert ref in names, (c, ref)
        assert c.expect in (">", "<", "=")


def test_a_speed_claim_counts_processes_and_judges_the_ratio_against_one():
    """Per fresh process one median step time per mode: the ratio's 90% interval decides, not the means."""
    c = Claim("faster", "-", "bench:train:cnref_mid", "bench:train:cnref", "<", key="median_step_s", setting=None,
              timing=True)
    full = [1.00, 1.10, 0.95, 1.05, 1.02]
    assert judge(c, [0.98 * f for f in full], full)["verdict"] == "confirmed"       # every ratio 0.98: tight
    drift = [0.90, 1.08, 0.97, 1.01, 0.99]                                         # mean ratio 0.99, wide
    j = judge(c, [d * f for d, f in zip(drift, full)], full)
    assert j["verdict"] == "no difference measured" and j["ratio_ci90"][0] < 1 < j["ratio_ci90"][1]
    assert judge(c, [1.2 * f for f in full], full)["verdict"] == "refuted"
    assert judge(c, [1.0, 1.0], [1.1, 1.1])["verdict"] == "too few seeds (n = 2)"


def test_a_study_claim_on_a_setting_its_seeds_lack_is_pending(tmp_path):
    """A setting added to a study after its seeds ran (the normalised Fig. 5d reading): pending, not a crash."""
    from cnref.lab.claims import evaluate_study_claim
    c = next(c for c in STUDY_CLAIMS if c.a == "cond_only_normalized/beta9/none")
    for seed in range(3):
        p = tmp_path / "studies" / "cpu" / "cfg" / f"seed{seed}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"study": "cfg", "seed": seed, "results": {c.b: {c.key: 0.5}}}))
    assert evaluate_study_claim(c, "cpu", tmp_path)["verdict"].startswith("pending")


def fake(root, ablation, variant, seed, iou, seconds=100.0, reused=False, steps=500):
    p = root / ablation / "cpu" / variant / f"seed{seed}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    ev = {s: {"iou": iou, "fill_ok": 1.0, "bg_ok": 1.0, "fid": 5.0} for s in SETTINGS}
    r = {"ablation": ablation, "variant": variant, "preset": "cpu", "seed": seed, "final_eval": ev,
         "config": {"steps": steps, "batch_size": 64, "accumulate": 1}, "convergence_step": 275, "train_seconds_this_process": seconds,
         "provenance": {"device": "cpu: test", "commit": "abc"},
         "history": [{"step": 0, "iou": 0.2, "elapsed_s": 0.0}, {"step": 500, "iou": iou, "elapsed_s": seconds}],
         "final": {"step": 500, "iou": iou}}
    if reused:
        r["reused_from"] = "elsewhere"
    p.write_text(json.dumps(r))


def curve_run(variant, seed, steps, ious):
    """A run validated every 25 steps with the given IoU curve."""
    return {"variant": variant, "seed": seed, "config": {"steps": steps, "seed": seed}, "convergence_step": None,
            "history": [{"step": 25 * k, "iou": v} for k, v in enumerate(ious)]}


def test_claims_and_tables_from_result_files(tmp_path):
    for s, (a, b) in enumerate([(0.8, 0.3), (0.7, 0.35), (0.75, 0.4)]):
        fake(tmp_path, "lite", "controlnet", s, a, reused=True)
        fake(tmp_path, "lite", "lite", s, b)
    c = next(c for c in CLAIMS if c.ablation == "lite" and c.setting == "held_out/none")
    j = evaluate_claim(c, "cpu", tmp_path)
    assert j["verdict"] == "confirmed" and j["a"]["mean"] == pytest.approx(0.75)
    by = group([json.loads(p.read_text()) for p in sorted(tmp_path.glob("lite/cpu/*/*.json"))],
                                   "lite", "cpu")
    assert list(by) == ["controlnet", "lite"]
    t = table(by, None, "iou")
    assert "0.750 ± 0.050" in t and "0.350 ± 0.050" in t
    cr = compute_report("cpu", tmp_path)
    assert cr["runs"] == 3 and cr["reused"] == 3 and cr["total_s"] == 300.0
    fake(tmp_path, "scenes", "outline", 0, 0.8)                      # a study's, outside the suite
    cr = compute_report("cpu", tmp_path)
    assert cr["total_s"] == 400.0 and cr["suite_s"] == 300.0 and cr["suite_runs"] == 3
    assert cr["long"] == {"runs": 0, "wall_s": 0.0, "variants": []}
    fake(tmp_path, "lite", "lite_x4", 0, 0.8, seconds=400.0, steps=2000)   # 4x the default run's images
    cr = compute_report("cpu", tmp_path)
    assert cr["suite_s"] == 700.0 and cr["long"] == {"runs": 1, "wall_s": 400.0, "variants": ["lite_x4"]}
    fake(tmp_path, "lite", "lite", 3, 0.4, seconds=50.0)             # a seed beyond the suite's 3
    cr = compute_report("cpu", tmp_path)
    assert cr["suite_s"] == 700.0 and cr["suite_runs"] == 4 and cr["total_s"] == 850.0
    assert cr["extra_seeds"] == {"runs": 1, "wall_s": 50.0, "seeds": [3]}


def test_runs_that_never_converged_are_lower_bounds():
    """A run that never converged counts as steps+1, a lower bound: it can show its group converging later
    only if nothing in the other group is censored, and never refutes an equality by itself."""
    eq, lt = claim("=", 25), claim("<")
    # 125-step runs that never converged vs 500-step runs converging at 275: not a refutation
    j = judge(eq, [126, 126, 126], [275, 275, 250], [True] * 3, [False] * 3)
    assert j["verdict"].startswith("unclear (censored") and j["a"]["censored"] == 3
    assert "never reached the level" in fmt(j["a"], "convergence_step")
    # but 500-step runs that never converged do refute "converges as early as" runs converging at 100
    assert judge(eq, [501, 501, 501], [100, 125, 100], [True] * 3, [False] * 3)["verdict"] == "refuted"
    assert judge(lt, [100, 125, 100], [501, 501, 501], [False] * 3, [True] * 3)["verdict"] == "confirmed"
    assert judge(lt, [126, 126, 126], [275, 275, 250], [True] * 3, [False] * 3)["verdict"].startswith("unclear")
    assert judge(eq, [275, 250, 275], [275, 250, 275], [False] * 3, [True, False, False])["verdict"] \
        .startswith("unclear (censored")




def curve(steps, ys, key="iou"):
    return [{"step": s, key: y} for s, y in zip(steps, ys)]


def test_few_seeds_and_missing_results_are_flagged():
    assert judge(claim(">"), [0.8, 0.7], [0.3, 0.4])["verdict"] == "too few seeds (n = 2)"
    assert judge(claim("="), [0.7], [0.7, 0.7, 0.7])["verdict"] == "too few seeds (n = 1)"   # never confirmed
    assert judge(claim(">"), [], [0.3])["verdict"].startswith("pending")


def test_convergence_step_is_the_interpolated_crossing_of_a_fixed_level():
    h = curve(range(0, 200, 25), [0.2, 0.2, 0.3, 0.5, 0.7, 0.75, 0.76, 0.76])
    assert convergence_step(h, "iou", 0.4) == pytest.approx(62.5)          # halfway from 0.3 (50) to 0.5 (75)
    assert convergence_step(h, "iou", 0.9) is None                          # never reached: censored
    cal = {"val_n": 32, "val_steps": 10, "val_beta": 3.0, "val_prompt": "perfect", "ground_truth": 1.0,
           "base": {"0": 0.18, "1": 0.22}}
    assert run_level({"seed": 1}, cal, 0.25) == pytest.approx(0.22 + 0.25 * 0.78)    # the run's own seed's base
    with pytest.raises(ValueError, match="seed"):
        run_level({"seed": 7}, cal)
    with pytest.raises(ValueError, match="val_n=32"):
        run_level({"seed": 0, "val_n": 64}, cal)                      # validated on other conditions
    assert run_level({"seed": 0}, None) is None


def test_first_reaches_even_from_above():
    """A curve at the level from its first validation converges at step 0 (a head start), whatever it does next;
    one that starts below converges where it first reaches the level, not at a later recrossing."""
    assert convergence_step(curve(range(0, 100, 25), [0.5, 0.3, 0.6, 0.7]), "iou", 0.4) == 0.0
    assert convergence_step(curve(range(0, 100, 25), [0.3, 0.5, 0.3, 0.6]), "iou", 0.4) == pytest.approx(12.5)
    cal = {"val_n": 32, "val_steps": 10, "val_beta": 3.0, "val_prompt": "perfect", "ground_truth": 1.0, "base": {"0": 0.2}}
    r = {"config": {"seed": 0}, "history": curve(range(0, 100, 25), [0.5, 0.3, 0.6, 0.7])}
    j = with_convergence(r, cal)
    assert j["head_start"] and j["convergence_step"] == 0.0 and j["level"] == pytest.approx(0.4)


def test_the_step_does_not_depend_on_the_run_length_or_the_validation_spacing():
    """Cutting a curve after its step never moves it (the old plateau rule did); validating every 25 or every
    100 steps gives the same step on a piecewise-linear curve, and nearly the same on a smooth one."""
    still_rising = curve(range(0, 1025, 25), [0.2 + 0.6 * min(1.0, s / 1000) for s in range(0, 1025, 25)])
    full = convergence_step(still_rising, "iou", 0.41)
    for last in (400, 600, 1000):
        assert convergence_step([h for h in still_rising if h["step"] <= last], "iou", 0.41) == pytest.approx(full)
    assert full == pytest.approx(350)
    every_100 = [h for h in still_rising if h["step"] % 100 == 0]
    assert convergence_step(every_100, "iou", 0.41) == pytest.approx(full)
    sig = lambda s: 0.2 + 0.6 / (1 + np.exp(-(s - 250) / 20))
    fine = convergence_step(curve(range(0, 501, 25), [sig(s) for s in range(0, 501, 25)]), "iou", 0.41)
    coarse = convergence_step(curve(range(0, 501, 100), [sig(s) for s in range(0, 501, 100)]), "iou", 0.41)
    exact = 250 - 20 * np.log(0.6 / 0.21 - 1)
    assert abs(fine - exact) < 3 and abs(coarse - exact) < 25


def test_same_steps_claims_cut_the_longer_runs_curve():
    long = curve_run("b", 0, 200, [0.2, 0.2, 0.6, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9])
    c = cut(long, 100)
    assert [h["step"] for h in c["history"]] == [0, 25, 50, 75, 100] and c["iou"] == 0.7
    assert c["config"]["steps"] == 100
    cal = {"val_n": 32, "val_steps": 10, "val_beta": 3.0, "val_prompt": "perfect", "ground_truth": 1.0,
           "base": {"0": 0.2, "1": 0.2}}                       # level 0.2 + 0.25 x 0.8 = 0.4
    assert with_convergence(c, cal)["convergence_step"] == pytest.approx(37.5)
    with pytest.raises(ValueError, match="last"):
        cut(long, 110)                  # not a validated step
    flat = with_convergence(cut(curve_run("a", 1, 100, [0.2] * 5), 100), cal)
    assert flat["convergence_step"] is None and value(flat, "convergence_step", None) == 100   # censored at the end


def test_equality_needs_the_interval_not_the_means():
    """Means 0.01 apart, inside a 0.05 tolerance, but seeds so spread that a difference beyond the tolerance
    cannot be excluded: unclear, where the means alone would have confirmed."""
    a, b = [0.60, 0.75, 0.90], [0.62, 0.74, 0.86]
    assert abs(np.mean(a) - np.mean(b)) < 0.05
    j = judge(claim("=", 0.05), a, b)
    assert j["verdict"].startswith("unclear") and j["ci90"][0] < -0.05 < 0.05 < j["ci90"][1]
    # the interval against scipy's own Welch test: at the interval's ends the two-sided p is exactly 0.10
    from scipy.stats import ttest_ind
    lo, hi = welch_interval(a, b)
    for edge in (lo, hi):
        shifted = [x - edge for x in a]
        assert ttest_ind(shifted, b, equal_var=False).pvalue == pytest.approx(0.10, abs=1e-6)
    assert judge(claim("=", 0.05), [0.70, 0.71, 0.70], [0.70, 0.70, 0.71])["verdict"] == "confirmed"
    assert judge(claim("=", 0.05), [0.9, 0.91, 0.92], [0.70, 0.70, 0.71])["verdict"] == "refuted"
    # a study's two settings on the same seeds: the per-seed differences, here all zero
    same = judge(claim("=", 0.005), [0.85, 0.86, 0.87], [0.85, 0.86, 0.87], paired=True)
    assert same["verdict"] == "confirmed" and same["ci90"] == (0.0, 0.0)


def test_every_reworded_claim_leads_to_a_claim_of_today():
    """The table of changed verdicts follows each claim reworded since the revision to the claim that replaced it:
    every old wording it names was printed then, and every replacement exists now."""
    from cnref.lab.claims import REVISED
    from cnref.lab.results import results_root
    before = (results_root() / "verdicts" / "before_revision.txt").read_text()
    now = {c.text for c in [*CLAIMS, *STUDY_CLAIMS]}
    for old, (new, why) in REVISED.items():
        assert f"): {old}.\n" in before, old
        assert new is None or new in now, new
        assert why


def test_why_changed_names_the_revised_rule_behind_each_kind_of_change():
    from cnref.lab.claims import why_changed
    from cnref.lab.declare import Claim
    order = Claim("t", "-", "a", "b", ">")
    equal = Claim("t", "-", "a", "b", "=", tol=0.05)
    step = Claim("t", "-", "a", "b", "<", key="convergence_step", setting=None)
    assert why_changed(order, "pending (no results)", "confirmed") == "runs made since"
    assert why_changed(order, "confirmed", "too few seeds (n = 2)").startswith("fewer than 3 seeds")
    assert why_changed(equal, "confirmed", "unclear (interval reaches past the tolerance)").startswith(
        "an equality needs its 90% interval")
    assert why_changed(step, "refuted", "confirmed").startswith("the convergence step is a fixed level's crossing")
    assert why_changed(order, "unclear (seeds overlap)", "confirmed") == "new runs or recomputed results"


def test_the_level_reached_exactly_counts_and_every_error_names_what_to_do():
    """A validation exactly at the level is the crossing (first *reaches*), a first validation exactly at it a head
    start; the level's share is the caller's; scenes runs are judged on edge F1; the errors say what was expected."""
    h = curve(range(0, 100, 25), [0.2, 0.3, 0.4, 0.6])
    assert convergence_step(h, "iou", 0.4) == 50.0 and convergence_step(h, "iou", None) is None
    cal = {"val_n": 32, "val_steps": 10, "val_beta": 3.0, "val_prompt": "perfect", "ground_truth": 1.0,
           "base": {"0": 0.2, "1": 0.2}}
    at = with_convergence({"config": {"seed": 0}, "history": curve(range(0, 100, 25), [0.4, 0.5, 0.6, 0.7])}, cal)
    assert at["head_start"] and at["convergence_step"] == 0.0
    half = with_convergence({"config": {"seed": 0}, "history": curve(range(0, 100, 25), [0.2, 0.3, 0.5, 0.7])}, cal,
                            share=0.5)
    assert half["level"] == pytest.approx(0.6) and half["convergence_step"] == pytest.approx(62.5)
    scenes = {"config": {"seed": 0, "data": "scenes"}, "history": [{"step": 0, "edge_f1": 0.7, "iou": 0.0}]}
    assert fidelity_key(scenes) == "edge_f1" and fidelity_key({"config": {}}) == "iou"
    assert fidelity_key({"config": {"data": "fill50k"}}) == "iou"
    assert with_convergence(scenes, cal)["head_start"]
    with pytest.raises(ValueError, match=r"^`config`: expected a run validated as its calibration \(val_n=32, "
                                         r"val_steps=10, val_beta=3.0, val_prompt=perfect\), received val_n=64, "
                                         r"val_steps=10, val_beta=3.0, val_prompt=perfect$"):
        run_level({"seed": 0, "val_n": 64}, cal)
    with pytest.raises(ValueError, match=r"^`seed`: expected a seed the validation calibration holds \(0, 1; more "
                                         r"with python -m cnref evaluate validation --seeds \.\.\.\), received 7$"):
        run_level({"seed": 7}, cal)
    assert set(calibrations("cpu")) == {"fill50k", "scenes"} and calibrations("cpu")["scenes"]["data"] == "scenes"


def test_the_rise_share_of_a_step_at_every_validation_spacing():
    """A step of any height scores 1 - window / span at the default window of 100 steps; a line scores 0; a curve
    with one validation, or none that rises, scores 0."""
    for every in (1, 5, 25):
        steps = range(0, 401, every)
        jump = [{"step": s, "iou": 0.2 + 0.5 * (s >= 200)} for s in steps]
        span = sum(list(steps)[-3:]) / 3
        assert rise_share(jump, "iou") == pytest.approx(1 - 100 / span), every
        assert rise_share([{"step": s, "iou": 0.2 + s / 1000} for s in steps], "iou") == pytest.approx(0, abs=1e-12)
    assert rise_share([{"step": 0, "iou": 0.3}], "iou") == 0.0
    assert rise_share([{"step": s, "iou": 0.5 - s / 1000} for s in range(0, 401, 25)], "iou") == 0.0
    assert rise_share([{"step": s, "loss": 0.5 - s / 1000} for s in range(0, 401, 25)], "loss", sign=-1.0) == \
        pytest.approx(0, abs=1e-12)


def test_the_rise_share_at_its_edges_and_the_noise_it_is_judged_against():
    """Edges of the rise share: a flat curve scores 0 (no division by a zero rise), a window wider than the curve
    or narrower than one validation spacing still gives a step's share, and a curve that starts at step 50 is
    measured from there. The noise: the loss's from its standard errors, a fidelity's from the sampler seeds
    (two or more per validation), and a curve with neither is refused by the ramp test."""
    from cnref.lab.convergence import validation_noise
    flat = [{"step": s, "iou": 0.3} for s in range(0, 401, 25)]
    assert rise_share(flat, "iou") == 0.0
    jump = lambda steps: [{"step": s, "iou": 0.2 + 0.5 * (s >= 200)} for s in steps]
    steps = list(range(0, 401, 25))
    span = sum(steps[-3:]) / 3
    assert rise_share(jump(steps), "iou", window=10) == pytest.approx(1 - 25 / span)        # one spacing at least
    assert rise_share(jump(steps), "iou", window=1000) == pytest.approx(1 - 400 / span)     # the whole curve at most
    late = list(range(50, 451, 25))
    assert rise_share(jump(late), "iou") == pytest.approx(1 - 100 / (sum(late[-3:]) / 3 - 50))
    loss = [{"step": s, "loss": 0.02, "loss_se": se} for s, se in zip(range(0, 100, 25), (0.001, 0.002, None, 0.002))]
    assert validation_noise(loss, "loss") == pytest.approx(((0.001 ** 2 + 2 * 0.002 ** 2) / 3) ** 0.5)
    seeds = [{"step": 0, "iou": 0.3, "iou_seeds": [0.3, 0.5]}, {"step": 25, "iou": 0.3, "iou_seeds": [0.2]},
             {"step": 50, "iou": 0.3, "iou_seeds": [0.1, 0.2, 0.3]}]
    assert validation_noise(seeds, "iou") == pytest.approx(((0.02 + 0.01) / 2) ** 0.5)
    assert validation_noise(flat, "iou") is None and validation_noise(flat, "loss") is None
    with pytest.raises(ValueError, match=r"^`history`: expected validations that measured their noise \(iou_seeds, "
                                         r"or loss_se for the loss\), received none$"):
        ramp_test(flat, "iou")
    noisy = [{**h, "iou_seeds": [h["iou"] - 0.01, h["iou"] + 0.01]} for h in jump(range(0, 401, 5))]
    assert ramp_test(noisy, "iou") == ramp_test(noisy, "iou", window=100, seed=0)            # the stated defaults
    assert ramp_test(noisy, "iou")["share"] != ramp_test(noisy, "iou", window=105)["share"]


def test_the_ramp_test_is_measured_from_the_first_validation_and_its_p_is_exact():
    """The same curve validated from step 50 instead of 0 gets the same ramps and the same p (the ramp starts at
    the curve's first validation); a jump far above its noise beats every ramp: p = 1 / (1 + 2000), the smallest."""
    ys = [0.2 + 0.5 / (1 + 2.718 ** (-(s - 200) / 40)) for s in range(0, 401, 25)]
    h = lambda start: [{"step": start + s, "iou": y, "iou_seeds": [y - 0.05, y + 0.05]}
                       for s, y in zip(range(0, 401, 25), ys)]
    a, b = ramp_test(h(0), "iou"), ramp_test(h(50), "iou")
    assert a["p"] == b["p"] and a["ramp_q95"] == pytest.approx(b["ramp_q95"]) and 1 / (1 + RAMPS) < a["p"] < 1
    sharp = [{"step": s, "iou": 0.2 + 0.5 * (s >= 200), "iou_seeds": [0.2 + 0.5 * (s >= 200) + d for d in (-1e-3, 1e-3)]}
             for s in range(0, 401, 25)]
    assert ramp_test(sharp, "iou")["p"] == 1 / (1 + RAMPS)


# The verdict rule's statistics, each against an independent computation: scipy's own tests, or the arithmetic
# written out.
def samples(seed, n_a=4, n_b=6):
    g = np.random.default_rng(seed)
    return list(g.normal(0.7, 0.05, n_a)), list(g.normal(0.6, 0.12, n_b))


def test_stats_are_the_sample_mean_spread_and_range():
    s = stats([1.0, 2.0, 4.0])
    assert s == {"n": 3, "mean": pytest.approx(7 / 3), "std": pytest.approx(np.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2
                 + (4 - 7 / 3) ** 2) / 2)), "min": 1.0, "max": 4.0, "values": [1.0, 2.0, 4.0]}
    assert stats([0.123456])["std"] == 0.0 and stats([0.123456])["values"] == [0.1235]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welchs_and_students_intervals_are_scipys(seed):
    from scipy.stats import ttest_ind, ttest_rel
    a, b = samples(seed)
    want = ttest_ind(a, b, equal_var=False)
    d, se, df = mean_difference(a, b)
    assert d == pytest.approx(np.mean(a) - np.mean(b)) and df == pytest.approx(want.df)
    assert d / se == pytest.approx(want.statistic)
    assert welch_interval(a, b) == pytest.approx(tuple(want.confidence_interval(0.90)))
    assert welch_interval(a, b, conf=0.95) == pytest.approx(tuple(want.confidence_interval(0.95)))
    b = b[:4]
    paired = ttest_rel(a, b)
    assert mean_difference(a, b, paired=True)[2] == 3
    assert welch_interval(a, b, paired=True) == pytest.approx(tuple(paired.confidence_interval(0.90)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tost_is_the_larger_of_two_shifted_one_sided_welch_tests(seed):
    from scipy.stats import ttest_ind, ttest_rel
    a, b = samples(seed)
    for tol in (0.05, 0.1, 0.3):
        up = ttest_ind(np.add(a, tol), b, equal_var=False, alternative="greater").pvalue    # d > -tol
        down = ttest_ind(np.subtract(a, tol), b, equal_var=False, alternative="less").pvalue  # d < tol
        assert tost_p(a, b, tol) == pytest.approx(max(up, down))
        b4 = b[:4]
        up = ttest_rel(np.add(a, tol), b4, alternative="greater").pvalue
        down = ttest_rel(np.subtract(a, tol), b4, alternative="less").pvalue
        assert tost_p(a, b4, tol, paired=True) == pytest.approx(max(up, down))
    # no spread at all: the difference itself decides
    assert tost_p([0.5] * 3, [0.5] * 3, 0.01) == 0.0 and tost_p([0.5] * 3, [0.6] * 3, 0.01) == 1.0
    assert welch_interval([0.5] * 3, [0.6] * 3) == pytest.approx((-0.1, -0.1))


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_rank_p_without_censoring_or_ties_is_scipys_exact_mann_whitney(alternative, seed):
    from scipy.stats import mannwhitneyu
    a, b = samples(seed, 4, 5)
    assert rank_p(a, b, alternative=alternative) == pytest.approx(
        mannwhitneyu(a, b, alternative=alternative, method="exact").pvalue)


def test_a_censored_value_is_surely_larger_only_than_exact_values_below_it():
    """a = [4, 9+] (9+: a lower bound), b = [5, 6]. A pair scores +1 when its first value is surely the larger: 9+
    against 4, 5 or 6, and 5 or 6 against 4, 6 against 5; nothing is surely above 9+. The six ways to pick a's two
    values score, against the other two:
        {4, 9+}: -1 -1 +1 +1 = 0    {4, 5}: -1 -1 -1 -1 = -4    {4, 6}: -1 -1 -1 +1 = -2
        {9+, 5}: +1 +1 +1 -1 = +2   {9+, 6}: +1 +1 +1 +1 = +4   {5, 6}: +1 -1 +1 -1 = 0
    Observed 0: four of six score >= 0, four of six <= 0."""
    assert rank_p([4, 9], [5, 6], [False, True], [False, False]) == pytest.approx(4 / 6)
    assert rank_p([4, 9], [5, 6], [False, True], [False, False], alternative="less") == pytest.approx(4 / 6)


def test_the_smallest_p_is_a_complete_separation_under_the_exact_test():
    from scipy.stats import mannwhitneyu
    for n_a, n_b in ((3, 3), (5, 5), (2, 4), (4, 3)):
        a, b = list(range(10, 10 + n_a)), list(range(n_b))
        assert smallest_p(n_a, n_b) == pytest.approx(mannwhitneyu(a, b, alternative="greater", method="exact").pvalue)
    assert smallest_p(3, 3) == 1 / 20 and smallest_p(5, 5) == 1 / 252


@pytest.mark.parametrize("q", [0.05, 0.2])
def test_benjamini_hochberg_keeps_what_scipys_adjusted_p_keeps(q):
    from scipy.stats import false_discovery_control
    ps = [0.03, 0.5, 0.004, 0.045, 0.001, 0.9, 0.012, 0.06, 0.02, 0.3, 0.008, 0.04]    # keeps 5 at 0.05, 9 at 0.2
    adjusted = false_discovery_control(ps)
    with_gaps = ps[:5] + [None] + ps[5:] + [None]
    kept = benjamini_hochberg(with_gaps, q)
    assert kept[5] is None and kept[-1] is None
    assert [k for k in kept if k is not None] == [bool(x <= q) for x in adjusted]
    assert 0 < sum(k for k in kept if k) < len(ps)
    assert benjamini_hochberg([None, None]) == [None, None]


def test_the_p_beside_a_verdict_names_its_test_in_order_of_precedence():
    j = {"p_mannwhitney": 0.05, "p_tost": 0.01, "p_ratio": 0.02, "p_ramp": 0.003}
    assert p_of(j) == (0.003, "ramp tests, Fisher; small: sudden")
    del j["p_ramp"]
    assert p_of(j) == (0.02, "t, ratio vs 1")
    del j["p_ratio"]
    assert p_of(j) == (0.01, "TOST")
    del j["p_tost"]
    assert p_of(j) == (0.05, "Mann-Whitney") and p_of({}) is None


def synthetic_calibration(**protocol):
    from dataclasses import asdict
    from cnref.mini.presets import EvalProtocol
    p = asdict(EvalProtocol())
    return {**{k: p[k] for k in ("val_n", "val_steps", "val_beta", "val_prompt")}, **protocol,
            "ground_truth": 0.9, "base": {"0": 0.30, "1": 0.3001, "2": 0.34}}


def test_the_level_range_a_reading_quotes_is_each_seeds_level_written_out():
    """Levels 0.3 + 0.25 (0.9 - 0.3) = 0.45, 0.3001 + 0.25 (0.9 - 0.3001) = 0.450075 and 0.34 + 0.25 (0.56) = 0.48,
    to three decimals; one value where the ends round alike; at another share, that share's levels."""
    cal = synthetic_calibration()
    assert level_range(None, [0]) == "none" and level_range({}, [0]) == "none"
    assert level_range(cal, [0]) == "0.450"
    assert level_range(cal, [0, 1]) == "0.450" and level_range(cal, [1]) == "0.450"
    assert level_range(cal, [0, 1, 2]) == "0.450-0.480"
    assert level_range(cal, [2, 0], share=0.5) == "0.600-0.620"


def test_judged_results_carry_their_own_datasets_level_and_step(tmp_path, monkeypatch):
    """`judged` reads each result against the calibration of its own dataset (fill50k when its config names
    none) and adds the level and the interpolated step; a result from a dataset without a calibration gets
    neither."""
    import cnref.lab.convergence as conv
    cal = synthetic_calibration()
    monkeypatch.setattr(conv, "load_validation_bounds",        # read from the results folder it is given
                        lambda preset, root, data: cal if (preset, root, data) == ("cpu", tmp_path, "fill50k") else None)
    hist = [{"step": 0, "iou": 0.3, "edge_f1": 0.1}, {"step": 100, "iou": 0.5, "edge_f1": 0.2}]
    runs = [{"config": {"seed": 0}, "history": hist}, {"config": {"seed": 2, "data": "fill50k"}, "history": hist},
            {"config": {"seed": 0, "data": "scenes"}, "history": hist}]
    a, b, c = conv.judged(runs, "cpu", tmp_path)
    assert a["level"] == pytest.approx(0.45) and a["convergence_step"] == pytest.approx(75.0)    # 0.3 -> 0.5
    assert b["level"] == pytest.approx(0.48) and b["convergence_step"] == pytest.approx(90.0)
    assert c["level"] is None and c["convergence_step"] is None and not c["head_start"]
    d, = conv.judged(runs[:1], "cpu", tmp_path, share=0.0)
    assert d["level"] == pytest.approx(0.30) and d["convergence_step"] == 0.0 and d["head_start"]


def test_without_noise_every_ramp_is_the_straight_line_to_the_curves_end_and_a_ramp_ties_with_itself():
    """With zero measured noise each simulated ramp is the straight line from the first validation to the first
    value plus the curve's rise, reached at the last step: the ramps' 95th percentile is that line's own share.
    A curve that is that line ties with every ramp, and ties count against it: p = 1, not sudden."""
    steps = list(range(0, 401, 25))
    ys = [0.2 + 0.5 / (1 + 2.718 ** (-(s - 200) / 40)) for s in steps]
    curve = [{"step": s, "iou": y, "iou_seeds": [y, y]} for s, y in zip(steps, ys)]
    rise = np.mean(ys[-3:]) - ys[0]
    line = [{"step": s, "iou": ys[0] + rise * s / 400} for s in steps]
    t = ramp_test(curve, "iou")
    assert t["noise"] == 0 and t["ramp_q95"] == pytest.approx(rise_share(line, "iou"), abs=1e-12)
    assert t["share"] == pytest.approx(rise_share(curve, "iou"))
    straight = [{**x, "iou_seeds": [x["iou"]] * 2} for x in line]
    assert ramp_test(straight, "iou")["p"] == 1.0


def test_the_ramp_tests_share_is_the_curves_rise_share_at_any_spacing():
    for every in (1, 5, 25):
        steps = range(0, 401, every)
        h = [{"step": s, "iou": 0.2 + 0.5 / (1 + 2.718 ** (-(s - 200) / 30)) + 0.01 * np.sin(s)} for s in steps]
        h = [{**x, "iou_seeds": [x["iou"] - 0.01, x["iou"] + 0.01]} for x in h]
        assert ramp_test(h, "iou")["share"] == pytest.approx(rise_share(h, "iou"), abs=1e-12), every


def test_a_speed_verdicts_ratio_interval_and_p_are_the_one_sample_t_on_the_ratios():
    """The timing branch against scipy: the ratios a/b per process, their mean, the 90% interval of Student's t and
    the one-sided p of the t test against 1, in the claimed direction."""
    from scipy.stats import ttest_1samp
    full = [1.00, 1.10, 0.95, 1.05, 1.02]
    a = [x * r for x, r in zip(full, (0.90, 0.97, 0.93, 0.99, 0.95))]
    r = np.divide(a, full)
    for expect, alternative in (("<", "less"), (">", "greater")):
        c = Claim("speed", "-", "a", "b", expect, key="median_step_s", setting=None, timing=True)
        j = judge(c, a, full)
        want = ttest_1samp(r, 1.0, alternative=alternative)
        assert j["ratio"] == pytest.approx(r.mean()) and j["p_ratio"] == pytest.approx(want.pvalue)
        assert j["ratio_ci90"] == pytest.approx(tuple(ttest_1samp(r, 1.0).confidence_interval(0.90)))
        assert j["verdict"] == ("confirmed" if expect == "<" else "refuted")
    c = Claim("speed", "-", "a", "b", "<", key="median_step_s", setting=None, timing=True)
    same = judge(c, [0.9, 1.8, 2.7], [1.0, 2.0, 3.0])            # every ratio exactly 0.9: no spread at all
    assert same["ratio_ci90"] == pytest.approx((0.9, 0.9)) and same["p_ratio"] == 0.0 and same["verdict"] == "confirmed"


def test_judge_reports_both_groups_and_keeps_the_tests_off_single_values():
    """What every verdict carries: each group's stats (with how many of its values are lower bounds), the
    difference of the means; the rank p and the interval only where each side has two values or more."""
    j = judge(claim(">"), [3.0, 5.0, 4.0], [1.0, 2.0], [False, True, False])
    assert j["a"]["censored"] == 1 and "censored" not in j["b"] and j["diff"] == pytest.approx(4.0 - 1.5)
    assert j["verdict"] == "too few seeds (n = 2)" and "p_mannwhitney" in j and "ci90" in j
    one = judge(claim("="), [0.7], [0.7, 0.7, 0.7])
    assert "p_mannwhitney" not in one and "ci90" not in one and "p_tost" not in one
    assert judge(claim(">"), [], [0.3]) == {"verdict": "pending (no results)", "a": None, "b": None}
    assert judge(claim(">"), [0.3], []) == {"verdict": "pending (no results)", "a": None, "b": None}
    from scipy.stats import mannwhitneyu
    xa, xb = [0.70, 0.72, 0.71], [0.69, 0.74, 0.705]
    eq = judge(claim("=", 0.05), xa, xb)                           # an equality's rank p is two-sided
    assert eq["p_tost"] < 0.05 and eq["p_mannwhitney"] == pytest.approx(mannwhitneyu(xa, xb, method="exact").pvalue)


@pytest.mark.parametrize("gap, verdict", [(30, "refuted"), (20, "unclear (censored")])
def test_an_equality_on_lower_bounds_is_refuted_only_by_a_gap_past_the_tolerance(gap, verdict):
    """Censored values (a run still below the level at its last step) can refute "a = b within 25 steps" only when
    even the lower bounds sit more than 25 above the other group's largest value."""
    b = [100.0, 110.0, 120.0]
    a = [120.0 + gap, 130.0 + gap, 125.0 + gap]
    j = judge(claim("=", 25), a, b, [True, False, True], [False] * 3)
    assert j["verdict"].startswith(verdict)
    j = judge(claim("=", 25), b, a, [False] * 3, [True, False, True])
    assert j["verdict"].startswith(verdict)                       # the same, the groups swapped
    j = judge(claim("=", 25), a, b, [False, False, True], [False] * 3)
    assert j["verdict"].startswith(verdict)                       # one lower bound is enough to make it censored


def test_a_ramp_verdict_carries_fishers_combination_and_the_excess_over_the_ramps():
    from scipy.stats import combine_pvalues
    steps = range(0, 401, 25)
    runs = [{"history": [{"step": s, "iou": 0.2 + 0.5 / (1 + np.exp(-(s - 200) / w)), "iou_seeds": [0.2, 0.22]}
                         for s in steps]} for w in (5, 40, 120)]
    c = Claim("sudden", "-", "x", "ramp", ">", key="rise_share:iou", setting=None)
    j = judge_ramp(c, runs)
    tests = [ramp_test(r["history"], "iou") for r in runs]
    ps = [t["p"] for t in tests]
    assert j["p_ramp"] == pytest.approx(combine_pvalues(ps, method="fisher").pvalue)
    assert j["p_seeds"] == [round(p, 4) for p in ps] and j["noise"] == [round(t["noise"], 4) for t in tests]
    excess = [t["share"] - t["ramp_q95"] for t in tests]
    assert j["diff"] == pytest.approx(np.mean(excess)) and j["a"]["values"] == [round(t["share"], 4) for t in tests]
    assert j["ci90"] == pytest.approx(welch_interval(excess, [0.0] * 3, paired=True))
    assert min(ps) < 0.05 < max(ps) and j["verdict"] == "unclear (seeds disagree)"
    assert judge_ramp(c, []) == {"verdict": "pending (no results)", "a": None, "b": None}
    loss = [{"history": [{"step": s, "loss": 1.0 - 0.5 * (s >= 200), "loss_se": 1e-3} for s in steps]}] * 3
    assert judge_ramp(Claim("falls suddenly", "-", "x", "ramp", ">", key="rise_share:loss", setting=None),
                      loss)["verdict"] == "confirmed"              # the loss is read downwards


# Where mutants of the verdict rule survived the tests above: its boundaries, written out exactly.
def test_the_rank_p_is_the_brute_force_gehan_test_with_ties_and_lower_bounds():
    """Against the definition written out pair by pair: a pair scores +1 when its second value is exact and below
    the first (the first is then surely the larger, even if it is a lower bound), -1 the other way round, 0 for
    ties and undecidable pairs; p is the share of all splits of the pooled values that score at least as far in
    the alternative's direction as the observed one."""
    from itertools import combinations

    def brute(xa, xb, ca, cb, alternative):
        pool = list(zip(xa + xb, ca + cb))
        def pair(u, v):
            (x, cx), (y, cy) = u, v
            if not cy and y < x:
                return 1
            if not cx and x < y:
                return -1
            return 0
        def score(idx):
            return sum(pair(pool[i], pool[j]) for i in idx for j in range(len(pool)) if j not in idx)
        obs = score(tuple(range(len(xa))))
        dist = [score(s) for s in combinations(range(len(pool)), len(xa))]
        hit = {"greater": [d >= obs for d in dist], "less": [d <= obs for d in dist]}.get(
            alternative, [abs(d) >= abs(obs) for d in dist])
        return sum(hit) / len(hit)

    g = np.random.default_rng(5)
    for trial in range(40):
        n_a, n_b = int(g.integers(1, 5)), int(g.integers(1, 5))
        xa, xb = [float(v) for v in g.integers(0, 5, n_a)], [float(v) for v in g.integers(0, 5, n_b)]   # ties
        ca, cb = [bool(v) for v in g.random(n_a) < 0.3], [bool(v) for v in g.random(n_b) < 0.3]
        for alternative in ("greater", "less", "two-sided"):
            assert rank_p(xa, xb, ca, cb, alternative) == pytest.approx(brute(xa, xb, ca, cb, alternative)), \
                (xa, xb, ca, cb, alternative)
    # a lower bound below an exact value decides nothing: 3, 4+ against 5, 6 scores -2 (2 of 6 splits as low)
    assert rank_p([3, 4], [5, 6], [False, True], [False, False], "less") == pytest.approx(2 / 6)
    assert rank_p([5, 6], [3, 4], [False, False], [False, True], "greater") == pytest.approx(2 / 6)


def test_the_statistics_at_their_edges():
    import warnings
    assert stats([1.0, 3.0])["std"] == pytest.approx(np.sqrt(2))                   # two values have a spread
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                            # no 0/0 behind the answer
        d, se, df = mean_difference([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])
        assert (d, se) == (-1.0, 0.0) and np.isnan(df)
    assert tost_p([1.0] * 3, [0.5] * 3, 0.5) == 1.0                # a difference exactly at tol is not inside it
    assert tost_p([1.0] * 3, [0.75] * 3, 0.5) == 0.0
    assert benjamini_hochberg([0.5, 0.9]) == [False, False]                      # nothing survives: nothing kept
    assert benjamini_hochberg([0.025, 0.5]) == [True, False]                     # p = q r / m exactly is kept
    assert benjamini_hochberg([0.04, 0.5]) == [False, False] == benjamini_hochberg([0.04, 0.5], 0.05)   # q = 0.05


def test_an_order_needs_every_seed_strictly_beyond():
    """Groups that touch (both hold 1.0) are not separated either way: neither confirmed nor refuted."""
    for expect in (">", "<"):
        assert judge(claim(expect), [1.0, 2.0, 3.0], [0.0, 0.5, 1.0])["verdict"] == "unclear (seeds overlap)"
        assert judge(claim(expect), [0.0, 0.5, 1.0], [1.0, 2.0, 3.0])["verdict"] == "unclear (seeds overlap)"


def test_judge_at_the_equality_tolerances_edges_and_its_tests_direction():
    from scipy.stats import mannwhitneyu
    from cnref.lab.declare import StudyClaim
    eq = claim("=", 0.5)
    # no spread: the interval is the difference itself; exactly at +-tol it is neither inside nor outside
    assert judge(eq, [1.5] * 3, [1.0] * 3)["verdict"].startswith("unclear (interval")
    assert judge(eq, [1.0] * 3, [1.5] * 3)["verdict"].startswith("unclear (interval")
    j = judge(claim("=", 0.15), [0.40, 0.60, 0.50], [0.55, 0.55, 0.55])
    assert j["ci90"][0] < -0.15 < j["ci90"][1] < 0.15 and j["verdict"].startswith("unclear (interval")
    xa, xb = [0.70, 0.72, 0.71], [0.69, 0.74, 0.705]
    assert judge(claim("<"), xa, xb)["p_mannwhitney"] == pytest.approx(
        mannwhitneyu(xa, xb, alternative="less", method="exact").pvalue)
    paired = judge(claim("=", 0.05), xa, xb, paired=True)
    assert paired["p_tost"] == pytest.approx(tost_p(xa, xb, 0.05, paired=True)) != tost_p(xa, xb, 0.05)
    study = judge(StudyClaim("s", "-", "a", "b", ">"), [3.0, 4.0, 5.0], [1.0, 2.0, 2.5])
    assert study["verdict"] == "confirmed" and "ratio" not in study        # a study claim is no speed claim


def test_censoring_at_the_edges_of_the_rule():
    eq = claim("=", 25)
    assert judge(eq, [150.0, 160.0], [100.0, 125.0], [True, False], [False, False])["verdict"] == \
        "too few seeds (n = 2)"
    assert judge(eq, [150.0, 160.0, 155.0], [100.0, 110.0, 125.0], [True, False, False], [False] * 3)["verdict"] \
        .startswith("unclear (censored")                                       # a gap of exactly 25
    assert judge(claim("=", 0.5), [1.0, 5.0, 9.0], [2.0, 6.0, 10.0], [True, False, False], [False] * 3)["verdict"] \
        .startswith("unclear (censored")                                       # overlapping: no gap at all
    lt = claim("<")
    for ca, cb in (([True, False, False], [False] * 3), ([False] * 3, [True, False, False])):
        j = judge(lt, [126.0, 300.0, 126.0], [275.0, 275.0, 250.0], ca, cb)
        assert j["verdict"] == "unclear (censored: runs that never converged within their steps)"
    j = judge(lt, [1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [False] * 3, [True, False, False])
    assert j["b"]["censored"] == 1 and "censored" not in j["a"]


@pytest.mark.parametrize("ratios, expect, verdict, p", [
    ([1.0, 1.0, 1.0], ">", "no difference measured", 0.5),      # exactly 1, no spread: t = 0
    ([1.0, 1.0, 1.0], "<", "no difference measured", 0.5),
    ([1.5, 1.5, 1.5], ">", "confirmed", 0.0),                   # exactly 1.5: surely above 1
    ([1.5, 1.5, 1.5], "<", "refuted", 1.0),
    ([0.9, 1.1, 1.3], ">", "no difference measured", None)])     # an interval across 1 refutes nothing
def test_a_speed_claim_at_ratios_without_spread_and_across_one(ratios, expect, verdict, p):
    import warnings
    c = Claim("speed", "-", "a", "b", expect, key="median_step_s", setting=None, timing=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        j = judge(c, [2.0 * r for r in ratios], [2.0] * 3)
    assert j["verdict"] == verdict
    if p is not None:
        assert j["p_ratio"] == p


def test_a_ramp_verdicts_interval_needs_two_runs_and_its_ramps_are_the_runs_own():
    steps = range(0, 401, 25)
    g = np.random.default_rng(1)
    loss = [{"history": [{"step": s, "loss": 1.0 - 0.4 * s / 400 + 0.01 * g.standard_normal(), "loss_se": 0.02}
                         for s in steps]} for _ in range(3)]
    c = Claim("falls suddenly", "-", "x", "ramp", ">", key="rise_share:loss", setting=None)
    j = judge_ramp(c, loss)
    tests = [ramp_test(r["history"], "loss", sign=-1.0) for r in loss]
    assert j["b"]["values"] == [round(t["ramp_q95"], 4) for t in tests]
    assert j["p_seeds"] == [round(t["p"], 4) for t in tests]
    assert "ci90" not in judge_ramp(c, loss[:1]) and "ci90" in judge_ramp(c, loss[:2])


def test_the_ramp_tests_p_is_its_simulation_rebuilt_from_its_description():
    """Rebuilt from the docstring alone: RAMPS straight lines from the first validation with the curve's rise
    (first value to the mean of the last three), reached at the last step, plus independent N(0, noise) at each
    validation (numpy's default_rng(seed), one standard normal vector a ramp); p = (1 + ramps scoring at least the
    curve's share) / (1 + RAMPS). A flat curve has no rise and ties every flat ramp: p = 1."""
    steps = np.arange(0, 401, 25)
    ys = 0.2 + 0.5 / (1 + np.exp(-(steps - 220) / 60))
    hist = [{"step": int(s), "iou": float(y), "iou_seeds": [float(y) - 0.03, float(y) + 0.03]} for s, y in zip(steps, ys)]
    noise = np.sqrt(np.mean([np.var(h["iou_seeds"], ddof=1) for h in hist]))
    share = rise_share(hist, "iou")
    rise = ys[-3:].mean() - ys[0]
    g = np.random.default_rng(0)
    ramps = []
    for _ in range(RAMPS):
        line = ys[0] + rise * steps / 400 + noise * g.standard_normal(len(steps))
        ramps.append(rise_share([{"step": int(s), "iou": float(v)} for s, v in zip(steps, line)], "iou"))
    t = ramp_test(hist, "iou")
    assert t["noise"] == pytest.approx(noise) and t["share"] == pytest.approx(share)
    assert t["p"] == pytest.approx((1 + sum(r >= share for r in ramps)) / (1 + RAMPS))
    assert t["ramp_q95"] == pytest.approx(np.quantile(ramps, 0.95))
    assert 1 / (1 + RAMPS) < t["p"] < 1
    flat = [{"step": int(s), "iou": 0.3, "iou_seeds": [0.3, 0.3]} for s in steps]
    assert ramp_test(flat, "iou")["p"] == 1.0


def test_each_designs_fair_lr_is_the_rules_choice_on_its_committed_sweep():
    """FAIR_LR holds a design once seed 0 has run at every lr of the sweep, and then exactly best_lr's choice."""
    from cnref.lab.ablations import FAIR_LR
    from cnref.lab.claims import fair_lr
    assert FAIR_LR == fair_lr("cpu")


def test_the_gpu_estimate_reproduces_the_lease_it_is_read_from():
    """gpu_seconds at the lease's own 1500 steps gives the training time its timeline records ("13:45-13:49 of
    training" for the three seeds), and its evaluation bound is the bounds run's 08:40:47 to 08:43:52."""
    from cnref.lab.compute import LAUNCH_S, gpu_seconds
    g = gpu_seconds(1500)
    assert 13 * 60 + 45 - 30 <= g["train_s"] <= 13 * 60 + 49 + 30          # the last validation is step 1450
    assert g["eval_s"] == 3 * 60 + 5
    assert g["total_s"] == round(g["train_s"] + g["eval_s"] + LAUNCH_S)
    assert gpu_seconds(750)["train_s"] == pytest.approx(g["train_s"] / 2, abs=1)


@pytest.fixture
def factor8_runs(tmp_path, monkeypatch):
    """Writes `factor8_lr` results under tmp_path: write(variant, plateau levels, convergence steps), a seed each,
    each curve flat at its level from step 25 (so the plateau rule stops it at step 200 with that level)."""
    from cnref.lab import claims
    monkeypatch.setattr(claims, "judged", lambda rs, preset, root: rs)     # convergence steps as written here

    def write(variant, levels, steps):
        for seed, (level, step) in enumerate(zip(levels, steps)):
            p = tmp_path / "factor8_lr" / "cpu" / variant / f"seed{seed}.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            h = [{"step": 0, "iou": 0.2}] + [{"step": s, "iou": level} for s in range(25, 401, 25)]
            p.write_text(json.dumps({"variant": variant, "seed": seed, "complete": True, "config": {},
                                     "convergence_step": step, "history": h}))
    return write


def test_the_gpu_recipe_follows_the_rule_factor8_lr_states(tmp_path, factor8_runs):
    """Worked by hand: 1e-3 (plateau 0.70, convergence steps 90, 100, 110) is within 0.02 of 3e-4 (0.71; 280-320)
    and converges first: lr 1e-3, steps 2 x 100. With 1e-3's plateau at 0.60 the rule keeps 3e-4: 2 x 300."""
    from cnref.lab import claims
    write = factor8_runs
    write("f8_lr3e-4", [0.71] * 3, [280, 300, 320])
    write("f8_lr1e-3", [0.70] * 2, [90, 100])
    assert claims.gpu_recipe("cpu", tmp_path) is None                     # 1e-3 has two seeds of three
    write("f8_lr1e-3", [0.70] * 3, [90, 100, 110])
    assert {k: v for k, v in claims.gpu_recipe("cpu", tmp_path).items() if k not in ("runs", "unreached")} == \
        {"lr": 1e-3, "steps": 200}
    write("f8_lr1e-3", [0.60] * 3, [90, 100, 110])
    r = claims.gpu_recipe("cpu", tmp_path)
    assert (r["lr"], r["steps"]) == (3e-4, 600)
    write("f8_lr3e-4", [0.71] * 3, [280, None, 320])                       # a seed that never converged
    r = claims.gpu_recipe("cpu", tmp_path)
    assert (r["lr"], r["steps"]) == (3e-4, None) and r["unreached"] == {3e-4: [400], 1e-3: []}


def test_the_readme_states_the_gpu_recipe_with_what_it_was_chosen_from(tmp_path, factor8_runs):
    """Pending until both lrs have seeds 0-2; then the chosen lr, its steps, each lr's figures and the H100 estimate
    for those steps, read from the committed lease."""
    from cnref.lab.compute import GPU_LEASE, gpu_seconds
    from cnref.lab.results import results_root
    from cnref.views.readme import gpu_recipe_text
    for part in (GPU_LEASE, "bounds/gpu"):                                # the lease the estimate reads
        (tmp_path / part).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / part).symlink_to(results_root() / part)
    factor8_runs("f8_lr3e-4", [0.71] * 3, [280, 300, 320])
    assert gpu_recipe_text(tmp_path).endswith("once seeds 0-2 of both its learning rates have run: pending.")
    factor8_runs("f8_lr1e-3", [0.70] * 3, [90, 100, 110])
    text = gpu_recipe_text(tmp_path)
    assert "lr 3e-4: mean convergence step 300, plateau IoU 0.71; lr 1e-3: mean convergence step 100, plateau IoU 0.70" in text
    assert "): lr 1e-3, 200 steps (twice its mean convergence step)" in text
    assert f"about {gpu_seconds(200)['total_s'] / 60:.0f} minutes: {gpu_seconds(200)['train_s']} s of training" in text
    assert text.endswith("That fits one 10-minute GPU call.") and gpu_seconds(200)["total_s"] <= 600
    factor8_runs("f8_lr1e-3", [0.70] * 3, [None] * 3)                   # 1e-3 never converged: the rule keeps 3e-4
    text = gpu_recipe_text(tmp_path)
    assert "): lr 3e-4, 600 steps" in text
    assert ("lr 1e-3: 3 of 3 seeds ended without reaching the level (at step 400, 400, 400; each was stopped by the "
            "plateau rule, which from step 200 takes a flat start for a plateau), so no mean convergence step") in text
    factor8_runs("f8_lr3e-4", [0.71] * 3, [400] * 3)                     # 800 steps: past one call, and said so
    over = gpu_seconds(800)["total_s"] - 600
    assert over > 0 and f"past one 10-minute GPU call by about {over / 60:.0f} minutes" in gpu_recipe_text(tmp_path)


def test_the_gpu_preset_trains_the_recipe_the_rule_chose():
    """The gpu preset's ControlNet lr and steps are the rule's choice on the committed `factor8_lr` runs; until those
    runs exist, the recipe of the GPU lease (lr 1e-4, 1500 steps), which did not converge."""
    from cnref.lab.claims import gpu_recipe
    from cnref.mini.presets import preset
    r, train = gpu_recipe("cpu"), preset("gpu").train
    assert (train.lr, train.steps) == ((1e-4, 1500) if r is None else (r["lr"], r["steps"]))
