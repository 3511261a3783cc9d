"""The `gain` study: the `before_jump` ControlNets of one seed sampled with every residual multiplied by g
(`cnref.measure.gain`), on their own validation, beside the run's convergence level.

    python -m cnref study gain --preset cpu --seeds 0 1 2

writes experiments/studies/<preset>/gain/seed<k>.json: the checkpoints it samples under "controlnets" (as every
study names the ControlNets it sampled), one row per checkpoint and gain, named "steps<k>_g<g>"
(condition fidelity and condition use), the row "convergence_level" (the run's level, in the fidelity's key), and
for each checkpoint the IoU its run recorded at its last validation, which g = 1 must reproduce; and seed<k>.npz:
each row's first validation images as uint8, as many as its run kept per validation (so g = 1 repeats them).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..checks import fail
from ..measure.gain import GAINS, gain_rows
from ..mini.metrics import fidelity_fn
from ..mini.presets import config_from_dict
from ..mini.data import to_uint8
from ..mini.shipping import load_base
from ..provenance import provenance
from .convergence import calibrations, run_level
from .declare import StudyClaim
from .results import load_controlnet, load_results, study_path

ABLATION = "before_jump"
LEVEL_ROW = "convergence_level"       # a reference row beside the settings: the run's level, nothing sampled

# stated before any before_jump run: if the copy is ready and only the residuals' size delays the images, amplified
# residuals place the disc before the jump; if the copy must still learn, they do not
GAIN_CLAIMS = {
    "gain4_places_0.8x": StudyClaim("Before the jump (step 200, 0.8x of the default's mean crossing), every residual x4 at "
               "sampling already places the disc: validation IoU above the run's convergence level",
               "this project's hypothesis (the copy is ready; the residuals' size delays the images)",
               "steps200_g4", LEVEL_ROW, ">", key="iou"),
    "gain4_places_0.5x": StudyClaim("... and so at step 125 (0.5x)", "this project's hypothesis (the copy is ready; "
               "the residuals' size delays the images)", "steps125_g4", LEVEL_ROW, ">", key="iou"),
    "gain4_raises_0.8x": StudyClaim("At step 200, residuals x4 raise the validation IoU over x1 (the copy has learned "
               "something the residuals' size hides)", "this project's hypothesis", "steps200_g4", "steps200_g1",
               ">", key="iou"),
    "gain2_raises_0.8x": StudyClaim("... and residuals x2 too", "this project's hypothesis", "steps200_g2",
               "steps200_g1", ">", key="iou"),
}


def row_name(variant: str, gain: float) -> str:
    """The study's row of one checkpoint (a `before_jump` variant) at one gain."""
    return f"{variant}_g{gain:g}"


def run_gain(preset: str, seed: int, root: Path | None = None, log=print) -> dict:
    """The study for one seed (skipped when its result exists with the same checkpoints and gains)."""
    path = study_path("gain", preset, seed, root)
    runs = {r["variant"]: r for r in load_results(ABLATION, preset, root) if r["seed"] == seed and r.get("complete")}
    if not runs:
        fail("seed", f"a seed with finished {ABLATION} runs (python -m cnref run {ABLATION} --preset {preset} "
                     f"--seeds {seed})", seed)
    sources = {v: f"{ABLATION}/{preset}/{v}/seed{seed}.json" for v in sorted(runs)}
    cfg = {"study": "gain", "gains": list(GAINS), "images": "val_keep"}
    old = json.loads(path.read_text()) if path.exists() else {}
    if old.get("config") == cfg and old.get("controlnets") == sources:
        log(f"skip   gain seed {seed} (finished)")
        return old
    base = load_base(preset, "fill50k")
    t0, prov = time.perf_counter(), provenance(seed=seed)
    rows, recorded, kept = {}, {}, {}
    for v in sorted(runs):
        r = runs[v]
        key = fidelity_fn(r["config"].get("data", "fill50k"))[1]
        run_cfg = config_from_dict(r["config"])
        measured, images = gain_rows(base, load_controlnet(r, base, root), run_cfg)
        for g, row in measured.items():
            rows[row_name(v, g)] = row
            kept[row_name(v, g)] = to_uint8(images[g][:run_cfg.protocol.val_keep]).numpy()
        recorded[v] = {"step": r["history"][-1]["step"], key: r["history"][-1][key]}
    r = next(iter(runs.values()))
    rows[LEVEL_ROW] = {key: run_level(r["config"], calibrations(preset, root)["fill50k"])}
    out = {"study": "gain", "preset": preset, "seed": seed, "provenance": prov, "config": cfg,
           "controlnets": sources, "results": rows,
           "recorded": recorded, "wall_s": round(time.perf_counter() - t0, 1)}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path.with_suffix(".npz"), **kept)
    path.write_text(json.dumps(out, indent=1))
    log(f"done   gain seed {seed}")
    return out
