"""Reading a validation curve: the convergence step (a fixed level's crossing) and the suddenness of a change.

The convergence step is the step at which a run's validation IoU (scenes: edge F1) first reaches a fixed level,
linearly interpolated between the two validations around the crossing. The level is `LEVEL` of the way from the
base alone to the ground truth, from the calibration rows of the same held-out set and sampler. Only the curve
up to the crossing counts: a longer run, or validations after it, never move it. A run that never reaches the
level is censored (None). `SENSITIVITY` names the two other levels every convergence verdict is shown at.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checks import fail
from .results import load_bounds


LEVEL = 0.25                  # the convergence level: this share of the way from the base alone to ground truth
SENSITIVITY = (0.125, 0.5)    # the two other levels every convergence verdict is also shown under


def convergence_level(bounds: dict | None, key: str = "iou", share: float = LEVEL) -> float | None:
    """The fidelity at which a run counts as converged: base + share x (ground truth - base), from the
    calibration rows of the validation's own setting (held-out conditions, perfect prompt)."""
    if not bounds:
        return None
    gt = bounds["ground_truth"]["held_out/perfect"][key]
    base = float(np.mean([rows["held_out/perfect"][key] for rows in bounds["base"].values()]))
    return base + share * (gt - base)


def convergence_step(history: list[dict], key: str, level: float | None) -> float | None:
    """The stated rule: the step at which `key` first reaches `level`, linearly interpolated between the two
    validations around the crossing. It depends on the curve up to the crossing only, so a longer run or
    denser validations after it never move it. None if the curve never reaches the level (censored)."""
    if level is None:
        return None
    for prev, h in zip(history, history[1:]):
        if h[key] >= level:
            if prev[key] >= level:          # at or above the level from the first validation on
                return float(prev["step"])
            return prev["step"] + (level - prev[key]) / (h[key] - prev[key]) * (h["step"] - prev["step"])
    return float(history[0]["step"]) if history and history[0][key] >= level else None


def suddenness(history: list[dict], key: str, window: int = 100, sign: float = 1.0) -> float:
    """How sudden a curve's change is: the largest improvement inside any `window` steps (sign = -1 for a
    curve that improves downwards, such as the loss), in units of the improvement that noise alone gives
    over that many validations: sqrt(m) x the robust std (1.4826 x MAD) of one validation's change, m the
    validations in a window. A steady or noisy curve scores a few units; a jump, tens. A curve shorter than the
    window (a smoke run's) is one window; one with fewer than two validations has no change: 0."""
    h = [x for x in history if x.get(key) is not None]
    if len(h) < 2:
        return 0.0
    steps = np.array([x["step"] for x in h], dtype=float)
    y = sign * np.array([x[key] for x in h], dtype=float)
    d = np.diff(y)
    m = min(len(y) - 1, max(1, int(round(window / np.median(np.diff(steps))))))
    jump = max(y[i + m] - y[i] for i in range(len(y) - m))
    noise = 1.4826 * np.median(np.abs(d - np.median(d)))
    return float(jump / (max(noise, 1e-12) * np.sqrt(m)))


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


def with_convergence(r: dict, level: float | None) -> dict:
    """A result with its convergence step by the rule above (result files written before it hold another)."""
    key = "edge_f1" if r["config"].get("data", "fill50k") == "scenes" else "iou"
    return {**r, "convergence_step": convergence_step(r["history"], key, level)}


def levels(preset: str, root: Path | None = None, share: float = LEVEL) -> dict[str, float | None]:
    """The convergence level of each dataset at a preset (from its calibration rows)."""
    return {"fill50k": convergence_level(load_bounds(preset, root), "iou", share),
            "scenes": convergence_level(load_bounds(preset, root, "scenes"), "edge_f1", share)}


def judged(results: list[dict], preset: str, root: Path | None = None, share: float = LEVEL) -> list[dict]:
    """Results as the claims read them: each with its convergence step at the level `share`."""
    lv = levels(preset, root, share)
    return [with_convergence(r, lv[r["config"].get("data", "fill50k")]) for r in results]
