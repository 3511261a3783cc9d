"""The ramp test of a curve's suddenness (cnref.lab.convergence.ramp_test, the verdict cnref.lab.verdict.judge_ramp),
on synthetic validation curves shaped like the default run's (21 validations over 500 steps, IoU from about 0.22 to
0.75) at two validation noise levels: a jump passes as a jump, while a steady ramp and pure noise do not."""
import numpy as np
import pytest

from cnref.lab.verdict import judge_ramp
from cnref.lab.convergence import ramp_test, rise_share, validation_noise
from cnref.lab.declare import Claim

STEPS = np.arange(0, 501, 25)


def curve(shape: str, noise: float, seed: int) -> list[dict]:
    """A history whose `iou` is the shape plus noise, scored under three sampler seeds (the first is `iou`)."""
    g = np.random.default_rng(seed)
    true = {"jump": 0.22 + 0.53 / (1 + np.exp(-(STEPS - 250) / 15)),
            "ramp": 0.2 + 0.6 * STEPS / STEPS[-1],
            "noise": np.full(len(STEPS), 0.22)}[shape]
    seeds = true[:, None] + noise * g.standard_normal((len(STEPS), 3))
    return [{"step": int(s), "iou": float(y[0]), "iou_seeds": [float(v) for v in y]} for s, y in zip(STEPS, seeds)]


@pytest.mark.parametrize("noise", [0.01, 0.04])       # 0.04: the noise measured on seeds 5-7 (0.036-0.039)
def test_a_jump_passes_a_ramp_and_noise_do_not(noise):
    p = {shape: [ramp_test(curve(shape, noise, k), "iou")["p"] for k in range(20)]
         for shape in ("jump", "ramp", "noise")}
    assert all(x < 0.05 for x in p["jump"]), p["jump"]
    assert sum(x < 0.05 for x in p["ramp"]) <= 3, p["ramp"]        # 5% of ramps are expected to pass by chance
    assert not any(x < 0.05 for x in p["noise"]), p["noise"]


def test_the_measured_noise_is_the_spread_across_sampler_seeds():
    h = curve("ramp", 0.02, 0)
    assert validation_noise(h, "iou") == pytest.approx(0.02, rel=0.25)
    assert validation_noise([{"step": 0, "iou": 0.3}], "iou") is None
    with pytest.raises(ValueError, match="iou_seeds"):
        ramp_test([{"step": 0, "iou": 0.3}, {"step": 25, "iou": 0.4}], "iou")


def test_rise_share_of_exact_shapes():
    """A straight line holds exactly a ramp's share (0); a step inside one window holds all of its rise, so its
    share is 1 - window / span (the span to the mean step of the last 3 validations, 475); a falling curve has no
    rise."""
    line = [{"step": int(s), "iou": 0.2 + 0.001 * s} for s in STEPS]
    step = [{"step": int(s), "iou": 0.2 if s < 250 else 0.8} for s in STEPS]
    assert rise_share(line, "iou") == pytest.approx(0.0, abs=1e-12)
    assert rise_share(step, "iou") == pytest.approx(1 - 100 / 475)
    assert rise_share([{"step": int(s), "iou": 0.8 - 0.001 * s} for s in STEPS], "iou") == 0.0
    assert rise_share([{"step": int(s), "loss": 0.8 - 0.001 * s} for s in STEPS], "loss", sign=-1) == \
        pytest.approx(0.0, abs=1e-12)


def test_verdicts_against_a_ramp():
    c = Claim("sudden", "-", "x", "ramp", ">", key="rise_share:iou", setting=None)
    runs = lambda shape: [{"history": curve(shape, 0.02, k)} for k in range(3)]
    assert judge_ramp(c, runs("jump"))["verdict"] == "confirmed"
    assert judge_ramp(c, runs("noise"))["verdict"] == "refuted"
    j = judge_ramp(c, runs("jump")[:2])
    assert j["verdict"] == "too few seeds (n = 2)" and j["p_ramp"] < 0.05
    not_sudden = Claim("not sudden", "-", "x", "ramp", "<", key="rise_share:iou", setting=None)
    assert judge_ramp(not_sudden, runs("noise"))["verdict"] == "confirmed"
    assert judge_ramp(not_sudden, runs("jump"))["verdict"] == "refuted"


def test_doubling_steps_of_an_exact_exponential():
    """A curve that doubles every 20 steps until step 200, then flattens: 20, read before the step given; zero or
    missing values are left out; a curve that does not grow has none."""
    from cnref.lab.convergence import doubling_steps
    h = [{"step": s, "use": 1e-6 * 2 ** (min(s, 200) / 20) if s else 0.0} for s in range(0, 401, 25)]
    assert doubling_steps(h, "use", 200) == pytest.approx(20)
    assert doubling_steps([{"step": s, "use": 0.5} for s in range(0, 101, 25)], "use", None) is None
    assert doubling_steps(h[:3], "use", None) is None
    assert doubling_steps(h[1:4], "use", None) == pytest.approx(20)              # three positive values suffice
    off = [x if x["step"] != 200 else {**x, "use": 1.0} for x in h]           # the step given is not read
    assert doubling_steps(off, "use", 200) == pytest.approx(20)


def test_half_rise_step_is_measured_from_the_runs_own_start():
    """From 0.4 at step 0 to an end of 0.8 (its last 3 validations): half the rise is 0.6, crossed between steps
    20 (0.5) and 30 (0.7) at 25; the same curve shifted up crosses at the same step; a fall or a flat curve: None."""
    from cnref.lab.convergence import half_rise_step
    ys = [0.4, 0.42, 0.5, 0.7, 0.8, 0.8, 0.8]
    h = [{"step": 10 * k, "iou": y} for k, y in enumerate(ys)]
    assert half_rise_step(h, "iou") == pytest.approx(25.0)
    assert half_rise_step([{**x, "iou": x["iou"] + 0.1} for x in h], "iou") == pytest.approx(25.0)
    assert half_rise_step([{"step": 10 * k, "iou": y} for k, y in enumerate([0.5, 0.4, 0.5, 0.5])], "iou") is None
    assert half_rise_step([{"step": 10 * k, "iou": 0.5} for k in range(4)], "iou") is None       # ends where it began


def test_plateau_read_after_the_fact_stops_where_training_would():
    """Window 20, tol 0.02 on validations every 10 steps: the windows' means differ by 0.265 at step 40 ({30, 40}
    vs {10, 20}), 0.165 at 50, 0.055 at 60 and 0.005 at 70: it stops at 70, at the level of {60, 70}, 0.795."""
    from cnref.lab.convergence import plateau
    ys = [0.2, 0.4, 0.55, 0.7, 0.78, 0.8, 0.79, 0.8, 0.95]
    h = [{"step": 10 * k, "iou": y} for k, y in enumerate(ys)]
    assert plateau(h, "iou", 20, 0.02) == (70.0, pytest.approx(0.795))
    assert plateau(h[:5], "iou", 20, 0.02) == (40.0, pytest.approx(0.74))     # never stops: the curve's end


def test_the_lr_rule_takes_the_earliest_convergence_among_the_best_plateaus():
    from cnref.lab.convergence import best_lr
    assert best_lr({1e-4: (200.0, 0.80), 3e-4: (80.0, 0.79), 1e-3: (30.0, 0.70)}, 0.02) == 3e-4   # 1e-3 lowers it
    assert best_lr({1e-4: (200.0, 0.80), 3e-4: (80.0, 0.70), 1e-3: (30.0, 0.81)}, 0.02) == 1e-3
    assert best_lr({1e-4: (None, 0.50), 3e-4: (None, 0.51)}, 0.02) == 1e-4        # both censored: the lower lr
    assert best_lr({1e-4: (90.0, 0.60), 3e-4: (None, 0.60)}, 0.02) == 1e-4        # never converging comes last
    assert best_lr({1e-4: (200.0, 0.75), 3e-4: (80.0, 0.5)}, 0.25) == 3e-4        # exactly tol below the best: within
