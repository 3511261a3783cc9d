"""The claims: every claim of the paper that an ablation or a study tests, with the runs it names and its verdict.

Every claim is a `Claim` (or a `StudyClaim`) declared beside the ablation or study whose runs it judges
(cnref.lab.ablations, cnref.lab.studies): a metric compared between two groups of runs (variants, each over
seeds) in an expected direction. `CLAIMS` and `STUDY_CLAIMS` gather them, in the order they are declared. This
module finds the runs a claim names and each run's figure (`runs_of`, `value`); the verdict rule that judges
them is stated once, in cnref.lab.verdict.

A claim with `same_steps` compares runs of different lengths over the steps they share: each run's validation
curve is cut at the shorter run's last step (the lr is constant, so a longer run's first steps are what a run of
that length would have taken) and judged on it: IoU of that last validation (the validation prompt, 32 held-out
conditions) or the convergence step of the cut curve.
`python -m cnref report readme --preset cpu` prints the README's claims table from the committed results.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..checks import fail
from .ablations import ABLATIONS, LR_SWEEP, LR_TOL, PLATEAU, SWEPT
from .declare import Claim, StudyClaim
from .convergence import (LEVEL, best_lr, calibrations, fidelity_key, half_rise_step, judged, plateau, rise_share,
                          with_convergence)
from .results import load_bounds, load_results, load_study, results_root
from .studies import STUDIES
from .verdict import judge, judge_ramp

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
    if key == "half_rise_step":     # half the rise from its own first validation to its end (None: no rise)
        v = half_rise_step(r["history"], fidelity_key(r))
        return float(r["history"][-1]["step"]) if v is None else v
    if key.startswith("iou_at_train_s:"):      # the validation IoU after that many seconds of training, interpolated
        h = [x for x in r["history"] if "train_s" in x]
        return float(np.interp(float(key.split(":")[1]), [x["train_s"] for x in h], [x["iou"] for x in h]))
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


def fair_lr(preset: str, root: Path | None = None) -> dict[str, float]:
    """`convergence.best_lr` on seed 0 of each design at every lr of the sweep (the `successors` run at 1e-4, the
    `successors_lr` runs at LR_SWEEP), for the designs whose sweep is complete: what FAIR_LR must hold."""
    seed0 = [r for name in ("successors", "successors_lr") for r in load_results(name, preset, root)
             if r["seed"] == 0 and r.get("complete")]
    runs = {r["variant"]: r for r in judged(seed0, preset, root)}
    run_name = lambda d, lr: d if lr == 1e-4 else f"{d}_lr{lr:g}"        # successors' run, or successors_lr's
    out = {}
    for d in SWEPT:
        swept = {lr: runs.get(run_name(d, lr)) for lr in (1e-4, *LR_SWEEP)}
        if all(swept.values()):
            curves = {lr: (r["convergence_step"], plateau(r["history"], fidelity_key(r), PLATEAU["plateau_window"],
                                                          PLATEAU["plateau_tol"])[1]) for lr, r in swept.items()}
            out[d] = best_lr(curves, LR_TOL)
    return out


def gpu_recipe(preset: str = "cpu", root: Path | None = None) -> dict | None:
    """The gpu preset's ControlNet recipe by the rule `factor8_lr` states before its runs: `best_lr` over its two
    lrs, each as the mean over seeds 0-2 of the convergence step (a seed that never reaches the level: never) and
    of the plateau level; steps twice the chosen lr's mean convergence step. None until seeds 0-2 of both lrs ran;
    steps None when a seed of the chosen lr did not reach the level (its mean is then undefined). "unreached": per lr,
    the last step of each seed that did not reach the level (where its plateau rule stopped it)."""
    done = judged([r for r in load_results("factor8_lr", preset, root) if r["seed"] in (0, 1, 2) and r.get("complete")],
                  preset, root)
    runs, unreached = {}, {}
    for v in ABLATIONS["factor8_lr"].variants(preset):
        rs = [r for r in done if r["variant"] == v.name]
        if len(rs) < 3:
            return None
        steps = [r["convergence_step"] for r in rs]
        levels = [plateau(r["history"], fidelity_key(r), PLATEAU["plateau_window"], PLATEAU["plateau_tol"])[1]
                  for r in rs]
        runs[v.cfg.lr] = (None if None in steps else float(np.mean(steps)), float(np.mean(levels)))
        unreached[v.cfg.lr] = [r["history"][-1]["step"] for r in rs if r["convergence_step"] is None]
    lr = best_lr(runs, LR_TOL)
    step = runs[lr][0]
    return {"lr": lr, "steps": None if step is None else int(2 * step), "runs": runs, "unreached": unreached}


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
