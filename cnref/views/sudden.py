"""The why-sudden study's views: the jump's step against the learning rate, the gate's opening, what a linear
readout finds in the ControlNet, and a reading generated from those numbers."""
from __future__ import annotations

import numpy as np
from scipy.stats import f as f_dist
from scipy.stats import linregress
from scipy.stats import t as student_t

from ..lab.claims import CLAIMS, runs_of, value
from ..lab.declare import StudyClaim
from ..lab.convergence import judged
from ..lab.results import results_root


def _steps(rs: list[dict]) -> list[float]:
    return [r["convergence_step"] for r in rs if r["convergence_step"] is not None]


def _lr(r: dict) -> float:
    return r["config"]["lr"]


def _batch(r: dict) -> int:
    """The logical batch: micro-batch x accumulation."""
    return r["config"]["batch_size"] * r["config"].get("accumulate", 1)


def batch_reference(preset: str, root=None) -> dict[str, list[dict]]:
    """`batch_vs_steps`' batch-16 runs at lr 1e-4, the reference `lr_3e-4_batch_16` is judged against (empty
    while none are committed)."""
    ref = next(c.b for c in CLAIMS if c.a == "lr_3e-4_batch_16")        # "batch_vs_steps:batch_16"
    rs = judged(runs_of(ref, {}, preset, results_root(root)), preset, root)
    return {ref: rs} if rs else {}


def plot_step_vs_lr(ax, by: dict[str, list[dict]]):
    """Convergence step against the learning rate (log-log, one marker per seed, one marker shape per batch;
    censored runs open, at their last step), with the gate-opening prediction step x lr = const through each
    batch's lr-1e-4 mean (pass another ablation's lr-1e-4 runs in `by` to give a batch its reference)."""
    runs = [r for rs in by.values() for r in rs]
    for b, marker in zip(sorted({_batch(r) for r in runs}, reverse=True), "os^D"):
        mine = [r for r in runs if _batch(r) == b]
        for k, r in enumerate(mine):
            cs = r["convergence_step"]
            ax.plot(_lr(r), cs if cs is not None else r["history"][-1]["step"], marker, color="black",
                    mfc="black" if cs is not None else "none", ms=5, label=f"batch {b}" if k == 0 else None)
        ref = _steps([r for r in mine if _lr(r) == 1e-4])
        if ref:
            lrs = np.array(sorted({_lr(r) for r in runs}))
            ax.plot(lrs, np.mean(ref) * 1e-4 / lrs, "--", lw=1, color="red" if marker == "o" else "tab:purple",
                    label=f"batch {b}: step x lr constant (through lr 1e-4)")
    ax.legend(fontsize=8, loc="lower left")
    ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="convergence step",
           title="when the jump comes, against the learning rate (open: never reached)")


def plot_gate(ax, by: dict[str, list[dict]]):
    """Mean over the 13 connections of ||r_i|| / ||h_i|| against the step, one line per run; dots mark each run's
    convergence step."""
    for name, rs in by.items():
        for k, r in enumerate(rs):
            h = [x for x in r["history"] if "gate" in x]
            y = [max(np.mean(x["gate"]["ratio"]), 1e-6) for x in h]
            line, = ax.plot([x["step"] for x in h], y, lw=1, label=name if k == 0 else None,
                            color=None if k == 0 else ax.lines[-1].get_color())
            cs = r["convergence_step"]
            if cs is not None:
                ax.plot(cs, np.interp(cs, [x["step"] for x in h], y), "o", color=line.get_color(), ms=4)
    ax.set(yscale="log", xlabel="training step", ylabel="mean ||r_i|| / ||h_i||",
           title="the gate: residual size relative to the locked feature (dots: convergence steps)")
    ax.legend(fontsize=8, loc="lower right")


def plot_readout(ax, rs: list[dict], name: str):
    """For one variant: held-out IoU of the linear readouts (from the copy's features, from the residual) and the
    validation IoU of the generated images, against the step."""
    for k, r in enumerate(rs):
        h = [x for x in r["history"] if "readout" in x]
        st = [x["step"] for x in h]
        for key, style in (("copy", "-"), ("residual", "--")):
            ax.plot(st, [x["readout"][key] for x in h], style, color="tab:blue" if key == "copy" else "tab:orange",
                    lw=1, label=f"readout from the {key}" if k == 0 else None)
        ax.plot(st, [x["iou"] for x in h], ":", color="black", lw=1, label="generated images" if k == 0 else None)
    ax.set(ylim=(0, 1), xlabel="training step", ylabel="held-out IoU of the disc", title=name)


def plot_gain(axes, results: list[dict]):
    """The `gain` study: for each before-jump checkpoint, each seed's validation IoU (left) and condition use
    (`use_loss_gap`, right) against the residual gain g, with the convergence level (the seeds' mean, dotted)."""
    ax_iou, ax_use = axes
    checkpoints = sorted({n.rsplit("_g", 1)[0] for r in results for n in r["results"] if "_g" in n},
                         key=lambda c: int(c.removeprefix("steps")))
    for i, c in enumerate(checkpoints):
        for j, r in enumerate(results):
            gs = sorted(float(n.rsplit("_g", 1)[1]) for n in r["results"] if n.startswith(f"{c}_g"))
            rows = [r["results"][f"{c}_g{g:g}"] for g in gs]
            label = f"step {r['recorded'][c]['step']}" if j == 0 else None
            ax_iou.plot(gs, [x["iou"] for x in rows], "o-", color=f"C{i}", lw=1, ms=4, label=label)
            ax_use.plot(gs, [x["use_loss_gap"] for x in rows], "o-", color=f"C{i}", lw=1, ms=4, label=label)
    ax_iou.axhline(np.mean([r["results"]["convergence_level"]["iou"] for r in results]), color="0.45", ls=":",
                   label="convergence level")
    for ax, what in ((ax_iou, "validation IoU"), (ax_use, "condition use: loss gap")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("residual gain g (every residual x g, at sampling only)")
        ax.set_ylabel(what)
        ax.set_title(f"{what} of the checkpoints before the jump ({len(results)} seeds)", fontsize=9)
        ax.legend(fontsize=7)


def _readout(r: dict) -> list[tuple[int, float]]:
    return [(x["step"], x["readout"]["copy"]) for x in r["history"] if "readout" in x]


READOUT_LEVEL = 0.5      # the readout's level, stated before the study's runs


def lead_fraction(r: dict) -> float | None:
    """How far before the images' convergence step the copy's readout first reaches READOUT_LEVEL, as a share of
    that step (the runs' time scales differ 23x); None: no convergence, or the readout never reaches it."""
    h, cs = _readout(r), r["convergence_step"]
    first = next((st for st, v in h if v >= READOUT_LEVEL), None)
    return None if cs is None or first is None or cs <= 0 else (cs - first) / cs


def gate_at_step(r: dict) -> float | None:
    """The mean ||r_i|| / ||h_i|| at the convergence step, as the gate claim reads it (None: not instrumented or
    never converged)."""
    if r["convergence_step"] is None or "gate" not in r["history"][-1]:
        return None
    return 10 ** value(r, "log_gate_at_step", None)


def step_exponent(by: dict[str, list[dict]], conf: float = 0.90) -> dict | None:
    """How the step scales with the learning rate, step ~ lr^-k: the least-squares slope of log step on log lr
    over every converged run at the batch with the most learning rates, with its `conf` t interval (None: fewer
    than two learning rates or three runs). The gate-opening rule (Adam moves a weight by about lr per step)
    predicts k = 1."""
    runs = [r for rs in by.values() for r in rs]
    if not runs:
        return None
    b = max({_batch(r) for r in runs}, key=lambda b: len({_lr(r) for r in runs if _batch(r) == b}))
    mine = [r for r in runs if _batch(r) == b]
    done = [r for r in mine if r["convergence_step"] is not None]
    if len({_lr(r) for r in done}) < 2 or len(done) < 3:
        return None
    x, y = np.log([_lr(r) for r in done]), np.log([r["convergence_step"] for r in done])
    fit = linregress(x, y)
    half = student_t.ppf(0.5 + conf / 2, len(done) - 2) * fit.stderr
    out = {"k": -fit.slope, "ci": (-fit.slope - half, -fit.slope + half), "batch": b, "n": len(done),
           "censored": len(mine) - len(done), "lrs": sorted({_lr(r) for r in done})}
    lrs = sorted(set(x))
    means = [y[x == v].mean() for v in lrs]
    if len(lrs) > 2:          # one power law over every lr: the fit on the per-lr means, and the lack-of-fit test
        on_means = linregress(lrs, means)
        half = student_t.ppf(0.5 + conf / 2, len(lrs) - 2) * on_means.stderr
        out["k_means"], out["ci_means"] = -on_means.slope, (-on_means.slope - half, -on_means.slope + half)
        out["lack_of_fit"] = lack_of_fit(x, y)
        out["local_k"] = [-(means[i + 1] - means[i]) / (lrs[i + 1] - lrs[i]) for i in range(len(lrs) - 1)]
    return out


def lack_of_fit(x: np.ndarray, y: np.ndarray) -> dict:
    """The lack-of-fit F test of a straight line through (x, y) with repeated x: the line's residual sum of squares
    split into pure error (around each x's mean, n - c degrees of freedom) and lack of fit (the means around the
    line, c - 2), F = (SS_lof / (c - 2)) / (SS_pe / (n - c)); a small p says one line does not describe the
    means."""
    fit = linregress(x, y)
    levels = sorted(set(x))
    n, c = len(x), len(levels)
    pure = sum(((y[x == v] - y[x == v].mean()) ** 2).sum() for v in levels)
    total = ((y - (fit.intercept + fit.slope * x)) ** 2).sum()
    F = ((total - pure) / (c - 2)) / (pure / (n - c))
    return {"F": float(F), "df": (c - 2, n - c), "p": float(f_dist.sf(F, c - 2, n - c))}


def step_factors(judged: dict[str, list[tuple]]) -> list[tuple[str, float]]:
    """The explanations' interventions that moved the step (their step claims confirmed; `judged` from
    `cnref.views.explanations.judged_explanations`), each with how many times earlier its runs converged (the
    reference's mean step over the intervention's)."""
    return [(c.text, j["b"]["mean"] / j["a"]["mean"]) for pairs in judged.values() for c, j in pairs
            if c.key == "convergence_step" and c.expect == "<" and not isinstance(c, StudyClaim)
            and j["verdict"] == "confirmed"]


def what_sets_the_step(by: dict[str, list[dict]], judged: dict[str, list[tuple]]) -> str:
    """The reading's last paragraph: the learning rate's exponent next to the step factors of the explanations'
    confirmed interventions (`judged`: `cnref.views.explanations.judged_explanations`; a description fitted after
    the runs, not a verdict)."""
    fit = step_exponent(by)
    if fit is None:
        return "What sets the step: too few converged learning-rate runs to fit."
    lo, hi = fit["ci"]
    text = (f"What sets the step here (a fit made after seeing the runs: a description, not a verdict): at batch "
            f"{fit['batch']} the step falls as lr^-k with k = {fit['k']:.2f} (90% CI [{lo:.2f}, {hi:.2f}]; least "
            f"squares of log step on log lr over {fit['n']} converged runs at lr {fit['lrs'][0]:.0e} to "
            f"{fit['lrs'][-1]:.0e}" + (f", {fit['censored']} that never reached the level left out" if fit["censored"]
                                        else "") + "), so a 3x learning rate brings the jump "
            f"{3 ** fit['k']:.1f}x earlier; the gate-opening rule's k = 1 is "
            + ("inside" if lo <= 1 <= hi else "outside") + " the interval.")
    if "lack_of_fit" in fit:
        lof, (lo_m, hi_m) = fit["lack_of_fit"], fit["ci_means"]
        text += (f" Fitted on the per-lr means instead, k = {fit['k_means']:.2f} (90% CI [{lo_m:.2f}, {hi_m:.2f}], "
                 f"{len(fit['lrs'])} means); and one power law over all of them "
                 + ("fails" if lof["p"] < 0.05 else "passes") + f" the lack-of-fit test (F({lof['df'][0]}, "
                 f"{lof['df'][1]}) = {lof['F']:.1f}, p = {lof['p']:.3f}): between neighbouring learning rates the "
                 "exponent is " + " / ".join(f"{k:.2f}" for k in fit["local_k"]) + ", from the lowest lr up.")
    factors = step_factors(judged)
    text += (" The explanations' interventions that moved it (their step claims confirmed): "
             + "; ".join(f"{t} ({f:.1f}x earlier)" for t, f in factors) + "." if factors else
             " None of the explanations' interventions moved it (no step claim confirmed).")
    return text


def reading(by: dict[str, list[dict]]) -> str:
    """The study's reading, from the numbers: step x lr and the gate at the jump per learning rate, and how far
    the copy's readout leads the images."""
    if not by:
        return "No learning-rate runs yet: nothing to read."
    rows = []
    for name, rs in by.items():
        steps, gates = _steps(rs), [g for g in map(gate_at_step, rs) if g is not None]
        lr, b = _lr(rs[0]), _batch(rs[0])
        rows.append(f"| {lr:.0e} | {b} | " + (f"{np.mean(steps):.0f} (n={len(steps)}) | {np.mean(steps) * lr:.4f} | "
                                             if steps else f"never reached the level (n={len(rs)}) | - | ")
                    + (f"{np.mean(gates):.2f} |" if gates else "- |"))
    text = ("Convergence against the learning rate (gate: the mean ||r_i|| / ||h_i||, interpolated at the "
            "convergence step):\n\n| lr | batch | convergence step | step x lr | gate at the step |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n")
    runs = [r for rs in by.values() for r in rs if _readout(r)]
    if runs:
        tops = [max(v for _, v in _readout(r)) for r in runs]
        reached = [r for r, t in zip(runs, tops) if t >= READOUT_LEVEL]
        text += (f"What the copy knows before the jump: a per-pixel linear readout of the disc from its features "
                 f"reaches a highest held-out IoU of {min(tops):.2f} to {max(tops):.2f}; the level stated for it, "
                 f"{READOUT_LEVEL}, is reached by {len(reached)} of {len(runs)} runs")
        fr = [f for f in map(lead_fraction, reached) if f is not None]
        text += (", so no lead is measured: the data do not say whether the copy knows the disc's place before "
                 "the images follow it." if not fr else
                 f": it leads the images' convergence step by {np.mean(fr):.2f} of that step on average (range "
                 f"{min(fr):.2f} to {max(fr):.2f}, {len(fr)} runs; the validation spacing sets a resolution of "
                 f"about {np.mean([r['config']['val_every'] / r['convergence_step'] for r in reached]):.2f}).")
    return text
