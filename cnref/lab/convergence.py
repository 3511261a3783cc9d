"""Reading a validation curve: the convergence step (a fixed level's crossing) and how sudden a change is.

The convergence step is the step at which a run's validation IoU (scenes: edge F1) first reaches a fixed level,
linearly interpolated between the two validations around the crossing. The level is `LEVEL` of the way from the
base alone to the ground truth, both measured on exactly the run's validation: its conditions, prompt, sampler
and sampler seed (`run_level`, from `python -m cnref evaluate validation`). Only the curve up to the crossing
counts: a longer run, or validations after it, never move it. A run at the level from its first validation on
converges at step 0 (a head start); one that never reaches it is censored (None). `SENSITIVITY` names the two
other levels every convergence verdict is shown at.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..checks import fail
from ..mini.presets import EvalProtocol
from ..mini.engine import plateaued
from .results import load_validation_bounds


LEVEL = 0.25                  # the convergence level: this share of the way from the base alone to ground truth
SENSITIVITY = (0.125, 0.5)    # the two other levels every convergence verdict is also shown under


PROTOCOL = ("val_n", "val_steps", "val_beta", "val_prompt")      # what a validation curve is measured with


def run_level(config: dict, calibration: dict | None, share: float = LEVEL) -> float | None:
    """A run's convergence level: `share` of the way from the base alone to the ground truth, both measured on
    the run's own validation (its conditions, prompt, sampler and sampler seed: the calibration row of its seed,
    `measure.evaluate.validation_bounds`). None without a calibration for its preset and data."""
    if not calibration:
        return None
    proto = {**dataclasses.asdict(EvalProtocol()), **config}
    if any(proto[k] != calibration[k] for k in PROTOCOL):
        fail("config", f"a run validated as its calibration ({', '.join(f'{k}={calibration[k]}' for k in PROTOCOL)})",
             ", ".join(f"{k}={proto[k]}" for k in PROTOCOL))
    base = calibration["base"].get(str(config["seed"]))
    if base is None:
        fail("seed", f"a seed the validation calibration holds ({', '.join(calibration['base'])}; more with "
             "python -m cnref evaluate validation --seeds ...)", config["seed"])
    return base + share * (calibration["ground_truth"] - base)


def convergence_step(history: list[dict], key: str, level: float | None) -> float | None:
    """The stated rule: the step at which `key` first reaches `level`, linearly interpolated between that
    validation and the one before; a curve at or above the level from its first validation on converges there
    (a head start). It depends on the curve up to the crossing only, so a longer run or denser validations after
    it never move it. None if the curve never reaches the level (censored)."""
    if level is None:
        return None
    for i, h in enumerate(history):
        if h[key] >= level:
            if i == 0:
                return float(h["step"])
            prev = history[i - 1]
            return prev["step"] + (level - prev[key]) / (h[key] - prev[key]) * (h["step"] - prev["step"])
    return None


RAMPS = 2000          # simulated ramps per ramp test
END = 3               # a curve's end: the mean of its last END validations


def rise_share(history: list[dict], key: str, window: int = 100, sign: float = 1.0) -> float:
    """How concentrated a curve's change is, whatever its scale and noise: the share of its whole rise R (from
    the first validation to the mean of the last END) that its steepest `window` steps hold, minus the share a
    straight line would hold there (window / the span to the end's mean step). A line scores 0, a step inside one
    window 1 - window / span; a curve with no rise (R <= 0) scores 0. sign = -1 for a curve that improves
    downwards."""
    h = [x for x in history if x.get(key) is not None]
    if len(h) < 2:
        return 0.0
    steps = np.array([x["step"] for x in h], dtype=float)
    y = sign * np.array([x[key] for x in h], dtype=float)
    return _share(steps, y, window)


def _share(steps: np.ndarray, y: np.ndarray, window: int) -> float:
    rise = y[-END:].mean() - y[0]
    if rise <= 0:
        return 0.0
    m = min(len(y) - 1, max(1, int(round(window / np.median(np.diff(steps))))))
    jump = max(y[i + m] - y[i] for i in range(len(y) - m))
    return float(jump / rise - (steps[m] - steps[0]) / (steps[-END:].mean() - steps[0]))     # minus a ramp's share


def half_rise_step(history: list[dict], key: str) -> float | None:
    """Time to the level measured from the run's own start, for designs that do not start at the base's fidelity
    (ControlNeXt's control is not zero at step 0): the step at which the curve first closes half the gap between
    its first validation and its end (the mean of its last END validations), by `convergence_step`'s rule. None
    when it ends no higher than it started."""
    y0, end = history[0][key], float(np.mean([x[key] for x in history[-END:]]))
    return convergence_step(history, key, y0 + 0.5 * (end - y0)) if end > y0 else None


def plateau(history: list[dict], key: str, window: int, tol: float) -> tuple[float, float]:
    """Where the plateau rule (`cnref.mini.engine.plateaued`) stops a curve, read after the fact (a run made without
    the rule: where it would have stopped), and its level there, the mean of `key` over that last window's
    validations; the curve's end if the rule never stops it."""
    stop = next((i for i in range(len(history)) if plateaued(history[:i + 1], key, window, tol)), len(history) - 1)
    s = history[stop]["step"]
    return float(s), float(np.mean([x[key] for x in history[:stop + 1] if s - window < x["step"] <= s]))


def best_lr(runs: dict[float, tuple[float | None, float]], tol: float) -> float:
    """A design's own learning rate, by the rule the successors' fair comparison states before its runs: of the
    lrs whose plateau level is within `tol` of the best lr's, the one whose curve reaches the convergence level
    first (never: last); ties go to the lower lr. `runs`: lr -> (convergence step or None, plateau level)."""
    top = max(level for _, level in runs.values())
    ok = [lr for lr, (_, level) in runs.items() if level >= top - tol]
    return min(ok, key=lambda lr: (np.inf if runs[lr][0] is None else runs[lr][0], lr))


def validation_noise(history: list[dict], key: str) -> float | None:
    """The sd of one validation's `key` apart from any change of the model, pooled over the run: for a fidelity, from
    the validations that scored the same checkpoint under several sampler seeds (`<key>_seeds`,
    protocol.noise_seeds > 0); for the training loss, the standard error of each validation's mean (`loss_se`).
    None when the run recorded neither."""
    if key == "loss":
        v = [x["loss_se"] ** 2 for x in history if x.get("loss_se") is not None]
    else:
        v = [np.var(x[f"{key}_seeds"], ddof=1) for x in history if len(x.get(f"{key}_seeds") or []) > 1]
    return float(np.sqrt(np.mean(v))) if v else None


def ramp_test(history: list[dict], key: str, window: int = 100, seed: int = 0, sign: float = 1.0) -> dict:
    """Is the curve's rise more concentrated than a steady ramp's? Its `rise_share` against RAMPS straight lines
    with the same validations, the same rise and independent noise of the measured validation sd at each
    validation (`validation_noise`): p = (1 + ramps scoring at least as high) / (1 + RAMPS), the smallest it can be
    1 / (1 + RAMPS). Pure noise has no rise, scores 0 and never passes. The ramps' noise is independent from one
    validation to the next, rougher than a curve validated with one sampler seed throughout: the test errs towards
    "a ramp". sign = -1 for a curve that improves downwards (the loss)."""
    noise = validation_noise(history, key)
    if noise is None:
        fail("history", f"validations that measured their noise ({key}_seeds, or loss_se for the loss)", "none")
    h = [x for x in history if x.get(key) is not None]
    steps = np.array([x["step"] for x in h], dtype=float)
    y = sign * np.array([x[key] for x in h], dtype=float)
    share = _share(steps, y, window)
    rise = max(y[-END:].mean() - y[0], 0.0)
    g = np.random.default_rng(seed)
    line = y[0] + rise * (steps - steps[0]) / (steps[-1] - steps[0])
    ramps = [_share(steps, line + noise * g.standard_normal(len(y)), window) for _ in range(RAMPS)]
    return {"share": share, "noise": noise, "ramp_q95": float(np.quantile(ramps, 0.95)),
            "p": (1 + sum(r >= share for r in ramps)) / (1 + RAMPS)}


def fidelity_key(r: dict) -> str:
    return "edge_f1" if r["config"].get("data", "fill50k") == "scenes" else "iou"


def with_convergence(r: dict, calibration: dict | None, share: float = LEVEL) -> dict:
    """A result with its level, its convergence step by the rule above (result files written before it hold
    another) and whether it started at the level (`head_start`)."""
    key, level = fidelity_key(r), run_level(r["config"], calibration, share)
    return {**r, "level": level, "convergence_step": convergence_step(r["history"], key, level),
            "head_start": level is not None and r["history"][0][key] >= level}


def calibrations(preset: str, root: Path | None = None) -> dict[str, dict | None]:
    """The validation calibration of each dataset at a preset (None where it is not made)."""
    return {data: load_validation_bounds(preset, root, data) for data in ("fill50k", "scenes")}


def level_range(calibration: dict | None, seeds, share: float = LEVEL) -> str:
    """The levels of the given seeds, for a reading: "0.37" or "0.36-0.40"; "none" without a calibration."""
    if not calibration:
        return "none"
    lv = [run_level({"seed": s, **{k: calibration[k] for k in PROTOCOL}}, calibration, share) for s in seeds]
    lo, hi = min(lv), max(lv)
    return f"{lo:.3f}" if round(lo, 3) == round(hi, 3) else f"{lo:.3f}-{hi:.3f}"


def judged(results: list[dict], preset: str, root: Path | None = None, share: float = LEVEL) -> list[dict]:
    """Results as the claims read them: each with its level and convergence step at the level `share`."""
    cal = calibrations(preset, root)
    return [with_convergence(r, cal[r["config"].get("data", "fill50k")], share) for r in results]


def doubling_steps(history: list[dict], key: str, until: float | None) -> float | None:
    """How many steps a positive, growing curve takes to double before `until` (a run's convergence step): the
    least-squares slope of log2 of the curve on the step, over its positive validations before `until` (None:
    fewer than three of them)."""
    h = [(x["step"], x[key]) for x in history
         if x.get(key) is not None and x[key] > 0 and (until is None or x["step"] < until)]
    if len(h) < 3:
        return None
    slope = np.polyfit([s for s, _ in h], np.log2([v for _, v in h]), 1)[0]
    return float(1 / slope) if slope > 1e-9 else None        # flat up to rounding: no growth
