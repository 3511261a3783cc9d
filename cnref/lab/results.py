"""Where results live and how they are read.

Each (ablation, preset, variant, seed) is one run. Its result file
    <root>/<ablation>/<preset>/<variant>/seed<k>.json   (+ seed<k>.npz: sample grids per validation)
holds the provenance (command, commit, device, versions, seed, full config), the validation history, the
final metrics and the convergence step. The root is `experiments/` in the working directory or the nearest
folder above it that has one (the repository, from its root or from notebooks/), or an explicit folder.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

from ..checks import fail
from ..mini.presets import config_from_dict
from ..paper.controlnet import ControlNet

KEEP_WEIGHTS = {"scenes", "before_jump"}   # ablations whose trained ControlNets studies load (seed<k>.safetensors)


def results_root(root: Path | str | None = None) -> Path:
    """`root` itself, or the `experiments/` folder of the working directory or of the nearest folder above it
    (never a folder next to an installed package)."""
    if root is not None:
        return Path(root).resolve()
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "experiments").is_dir():
            return d / "experiments"
    return here / "experiments"


def scratch_root() -> Path:
    """Where a reader's reruns go unless recorded: runs/scratch/experiments beside experiments/ (ignored by git)."""
    return results_root().parent / "runs" / "scratch" / "experiments"


def runs_dir(root: Path) -> Path:
    """Where the runs of a results root keep their checkpoints: the repository's runs/ for its experiments/,
    <root>/_runs for any other root (tests, smoke notebooks, scratch reruns never resume from the repository's)."""
    return root.parent / "runs" if root == results_root() else root / "_runs"


def result_path(ablation: str, preset: str, variant: str, seed: int, root: Path | None = None) -> Path:
    return results_root(root) / ablation / preset / variant / f"seed{seed}.json"


def load_results(ablation: str, preset: str, root: Path | None = None) -> list[dict]:
    """Every result of an ablation at a preset (what the notebooks draw)."""
    return [json.loads(p.read_text()) for p in sorted((results_root(root) / ablation / preset).glob("*/seed*.json"))]


def load_bench(name: str, root: Path | None = None) -> dict | None:
    """A committed bench result, experiments/bench/<name>.json (e.g. "successors_cpu"), or None."""
    p = results_root(root) / "bench" / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def final_key(setting: str) -> str:
    """npz key of the final evaluation's images of one setting ("held_out/none" -> "final__held_out__none")."""
    return "final__" + setting.replace("/", "__")


def load_samples(result: dict, root: Path | None = None):
    """The sample grids (uint8, one per validation) and their steps saved beside a result."""
    return np.load(result_path(result["ablation"], result["preset"], result["variant"], result["seed"], root)
                   .with_suffix(".npz"))


def final_images(r: dict, setting: str, root: Path | None = None) -> np.ndarray | None:
    """The uint8 images of one final-evaluation set of a run (None for runs made before they were kept)."""
    npz = load_samples(r, root)
    return npz[final_key(setting)] if final_key(setting) in npz.files else None


def save_controlnet(net, path: Path, result: dict) -> None:
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(path),
              metadata={"config": json.dumps(result["config"]), "provenance": json.dumps(result["provenance"])})


def load_controlnet(result: dict, base, root: Path | None = None) -> ControlNet:
    """The trained ControlNet of a finished run of a KEEP_WEIGHTS ablation, over `base`'s locked UNet."""
    path = result_path(result["ablation"], result["preset"], result["variant"], result["seed"], root)
    w = path.with_suffix(".safetensors")
    if not w.exists():
        fail("result", f"a run whose weights {w.name} were kept (ablations {sorted(KEEP_WEIGHTS)})",
             f"{result['ablation']}/{result['variant']}/seed{result['seed']}")
    net = config_from_dict(result["config"]).control.build(base.unet)
    net.load_state_dict(load_file(str(w)), strict=True)
    return net.eval()


def bounds_path(preset: str, data: str = "fill50k", root: Path | None = None) -> Path:
    return results_root(root) / "bounds" / preset / ("bounds.json" if data == "fill50k" else f"bounds_{data}.json")


def validation_path(preset: str, data: str = "fill50k", root: Path | None = None) -> Path:
    return results_root(root) / "bounds" / preset / ("validation.json" if data == "fill50k" else f"validation_{data}.json")


def load_validation_bounds(preset: str, root: Path | None = None, data: str = "fill50k") -> dict | None:
    """The validation curves' calibration (`python -m cnref evaluate validation`), None if not made."""
    path = validation_path(preset, data, root)
    return json.loads(path.read_text()) if path.exists() else None


def load_bounds(preset: str, root: Path | None = None, data: str = "fill50k") -> dict | None:
    """The calibration rows (`python -m cnref evaluate bounds [--set data=scenes]`), None if not made."""
    path = bounds_path(preset, data, root)
    return json.loads(path.read_text()) if path.exists() else None


def study_path(study: str, preset: str, seed: int, root: Path | None = None) -> Path:
    return results_root(root) / "studies" / preset / study / f"seed{seed}.json"


def load_study(study: str, preset: str, root: Path | None = None) -> list[dict]:
    return [json.loads(p.read_text())
            for p in sorted((results_root(root) / "studies" / preset / study).glob("seed*.json"))]


def study_images(result: dict, root: Path | None = None) -> dict[str, np.ndarray]:
    """The kept images of each setting of a study result, by setting name."""
    z = np.load(study_path(result["study"], result["preset"], result["seed"], root).with_suffix(".npz"))
    return {k.replace("__", "/"): z[k] for k in z.files}


def history_from_lightning_csv(path: Path, val_every: int) -> list[dict]:
    """The validation history of a run whose result file was never written, from the metrics.csv that
    Lightning's CSVLogger kept. A validation at step s (a multiple of val_every) is logged from that step's
    training_step and appears in the rows of the next logging steps, so a new value of val/elapsed_s marks
    it: its step is (row step + 1) rounded down to val_every. `loss` is the mean training loss logged since
    the previous validation (None at the first)."""
    out, prev, losses = [], None, []
    for row in csv.DictReader(path.open()):
        if row.get("val/elapsed_s") and row["val/elapsed_s"] != prev:
            prev = row["val/elapsed_s"]
            out.append({"step": (int(row["step"]) + 1) // val_every * val_every,
                        **{k[4:]: float(v) for k, v in row.items() if k.startswith("val/") and v},
                        "loss": round(sum(losses) / len(losses), 6) if out and losses else None})
            losses = []
        if row.get("train/loss"):
            losses.append(float(row["train/loss"]))
    return out


def load_cut_short(folder: Path) -> list[dict]:
    """Runs stopped before they wrote their results (a GPU lease that ended, a CPU run out of session time):
    one pseudo-result per seed<k>.metrics.csv in the folder, with its history and the folder's provenance.json
    (experiments/leases/<date>_<kind>/, experiments/cut_short/<date>_<ablation>_<variant>_<preset>/)."""
    prov = json.loads((folder / "provenance.json").read_text())
    return [{"seed": int(p.name[4:].split(".")[0]), "complete": False, "provenance": prov, "config": prov["config"],
             "history": history_from_lightning_csv(p, prov["config"]["val_every"])}
            for p in sorted(folder.glob("seed*.metrics.csv"))]
