"""How much wall time the committed results of a preset cost (`python -m cnref compute --preset cpu`)."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from .ablations import SUITE, SUITE_SEEDS, default_run
from .results import load_cut_short, results_root


def tally(bucket: dict, wall_s: float) -> None:
    """One more run of wall_s seconds in a compute bucket ({"runs", "wall_s"})."""
    bucket["runs"] += 1
    bucket["wall_s"] = round(bucket["wall_s"] + wall_s, 1)


def compute_report(preset: str, root: Path | None = None) -> dict:
    """The compute a preset's results cost: wall seconds of every trained (not reused) run, per ablation
    and device (wall time includes validation and the final evaluation), and of every study seed
    (studies/<study>). `suite_s`/`suite_runs`: the part that is the paper's ablation suite (`SUITE` x `SUITE_SEEDS`);
    `long`: the suite's runs that see more images than the preset's default run (follow-ups such as lite_x4);
    `extra_seeds`: runs of the suite's ablations on further seeds (added where 3 seeds left a verdict unclear)."""
    default = default_run(preset)
    default_images = default.steps * default.accumulate * default.batch_size
    out: dict = {"total_s": 0.0, "runs": 0, "reused": 0, "suite_s": 0.0, "suite_runs": 0,
                 "long": {"runs": 0, "wall_s": 0.0, "variants": []},
                 "extra_seeds": {"runs": 0, "wall_s": 0.0, "seeds": []}, "by_ablation": {}, "devices": {}}
    for p in sorted(results_root(root).glob(f"*/{preset}/*/seed*.json")):
        r = json.loads(p.read_text())
        if "reused_from" in r:
            out["reused"] += 1
            continue
        s = r.get("train_seconds_this_process") or r.get("wall_s") or 0.0
        name = r["ablation"] if "ablation" in r else f"studies/{r['study']}"
        tally(out["by_ablation"].setdefault(name, {"runs": 0, "wall_s": 0.0}), s)
        tally(out["devices"].setdefault(r["provenance"]["device"], {"runs": 0, "wall_s": 0.0}), s)
        out["total_s"] = round(out["total_s"] + s, 1); out["runs"] += 1
        if name not in SUITE:
            continue
        if r["seed"] not in SUITE_SEEDS:
            tally(out["extra_seeds"], s)
            out["extra_seeds"]["seeds"] = sorted({*out["extra_seeds"]["seeds"], r["seed"]})
            continue
        out["suite_s"] = round(out["suite_s"] + s, 1); out["suite_runs"] += 1
        c = r["config"]
        if c["steps"] * c["accumulate"] * c["batch_size"] > default_images:
            tally(out["long"], s)
            out["long"]["variants"] = sorted({*out["long"]["variants"], r["variant"]})
    return out


# the GPU lease whose three ControlNet runs shared one H100 (--jobs 3), validated every 50 steps at the gpu preset
GPU_LEASE = "leases/2026-11-25_h100"
LAUNCH_S = 60.0      # start-up before a run's clock starts (imports, the base, the data): an allowance, not measured


def gpu_seconds(steps: int, root: Path | None = None) -> dict:
    """What `bash run.sh gpu` costs for `steps` steps on an H100, estimated from GPU_LEASE: its slowest seed's
    seconds per step (elapsed seconds at its last validation over that step, validations every 50 steps
    included: wider spacing only saves time), times `steps`; plus the final evaluation, bounded by the lease's
    bounds evaluation (the same sampling as three final evaluations, one process, while the three trainings shared
    the GPU), its wall time from the file's start stamp to the lease's timeline; plus LAUNCH_S."""
    folder = results_root(root) / GPU_LEASE
    per_step = max(r["history"][-1]["elapsed_s"] / r["history"][-1]["step"] for r in load_cut_short(folder))
    start = json.loads((results_root(root) / "bounds" / "gpu" / "bounds.json").read_text())["provenance"]["time_utc"]
    done = next(line.split()[0] for line in (folder / "timeline.txt").read_text().splitlines() if "bounds done" in line)
    day = start[:10]
    eval_s = (datetime.fromisoformat(f"{day}T{done}+00:00") - datetime.fromisoformat(start.replace("Z", "+00:00")))
    out = {"per_step_s": round(per_step, 3), "train_s": round(steps * per_step), "eval_s": eval_s.total_seconds(),
           "launch_s": LAUNCH_S}
    out["total_s"] = round(out["train_s"] + out["eval_s"] + LAUNCH_S)
    return out
