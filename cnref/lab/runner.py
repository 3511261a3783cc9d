"""The runner every ablation uses: run (or resume, or skip, or reuse) the runs of an ablation.

A finished run is skipped; an interrupted one resumes from its last checkpoint; a run whose config equals a
finished run of any ablation reuses that result (the default run is every ablation's baseline, trained
once), and the reuse is recorded; a result made with a different config is never overwritten silently.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..checks import check_positive, fail
from ..measure.evaluate import bounds, final_evaluation, validation_bounds
from ..mini.metrics import fidelity_fn
from ..mini.presets import ControlNetTrainConfig, check_run, config_dict, config_from_dict, override
from ..mini.presets import preset as get_preset
from ..provenance import provenance, uncommitted_diff
from ..mini.shipping import base_sha256, load_base, made_on_shipped_base
from ..mini.train import ControlNetTraining, check_trained_state, train_controlnet
from .ablations import Variant, variants
from .convergence import convergence_step, run_level
from .results import (KEEP_WEIGHTS, bounds_path, final_key, load_bounds, load_validation_bounds, result_path,
                      results_root, runs_dir, validation_path,
                      save_controlnet)


def same_config(old: dict | None, cfg: dict) -> bool:
    """Whether a stored result's config is this one. Results written before a config field existed hold
    no key for it: they ran with the field's default, which fills the gap; older layouts are read as they were
    meant (`presets.config_from_dict`)."""
    if old is None:
        return False
    try:
        return config_dict(config_from_dict(old)) == cfg
    except (TypeError, ValueError):         # a field this code does not have, or a value it refuses
        return False


def has_fid(r: dict) -> bool:
    """Results made before FID was measured hold no final images: they are not reused as baselines."""
    return all("fid" in m for m in r.get("final_eval", {}).values()) and bool(r.get("final_eval"))


def find_identical(cfg: dict, root: Path, exclude: Path) -> Path | None:
    """A finished result of any ablation with exactly this config, made on the base shipped now."""
    for p in sorted(root.glob(f"*/{cfg['preset']}/*/seed{cfg['seed']}.json")):
        if p == exclude:
            continue
        try:
            r = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if r.get("complete") and same_config(r.get("config"), cfg) and "reused_from" not in r and has_fid(r) \
                and made_on_shipped_base(r):
            return p
    return None


def check_clean(prov: dict, root: Path, allow_dirty: bool, diff_path: Path) -> dict:
    """A result for the repository's experiments/ comes from a committed tree: one made with uncommitted changes
    in cnref/ is refused, unless `allow_dirty`, which writes the diff next to the result and names it."""
    if not prov["commit"].endswith("+dirty") or root != results_root():
        return prov
    if not allow_dirty:
        fail("tree", "committed code for a result in experiments/ (commit first, or pass --allow-dirty to record "
             "the diff next to the result)", f"uncommitted changes in cnref/ over {prov['commit']}")
    diff_path.parent.mkdir(parents=True, exist_ok=True)
    diff_path.write_text(uncommitted_diff())
    return {**prov, "diff": diff_path.name}


def level_for(cfg: ControlNetTrainConfig, root: Path) -> float | None:
    """A run's convergence level (`convergence.run_level`): from the validation calibration beside its results,
    else (a scratch folder has none) from the committed one, which is the same preset's."""
    cal = load_validation_bounds(cfg.preset, root, cfg.data) or load_validation_bounds(cfg.preset, results_root(),
                                                                                         cfg.data)
    return run_level(config_dict(cfg), cal)


def run_one(ablation: str, v: Variant, seed: int, root: Path | None = None, force: bool = False,
            log=print, allow_dirty: bool = False) -> dict:
    root = results_root(root)
    cfg = replace(v.cfg, seed=seed)
    path = result_path(ablation, cfg.preset, v.name, seed, root)
    if path.exists():
        old = json.loads(path.read_text())
        if same_config(old.get("config"), config_dict(cfg)) and old.get("complete"):
            log(f"skip   {os.path.relpath(path)} (finished)")
            return old
        if not force:
            fail("result", f"no finished result with another config at {path} (pass --force to replace it)",
                 "a result whose config differs from this run's")
    same = find_identical(config_dict(cfg), root, path)
    if same is not None:
        out = {**json.loads(same.read_text()), "ablation": ablation, "variant": v.name,
               "reused_from": str(same.relative_to(root))}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".npz").write_bytes(same.with_suffix(".npz").read_bytes())
        path.write_text(json.dumps(out, indent=1))
        log(f"reuse  {same.relative_to(root)} -> {path.relative_to(root.parent)} (same config)")
        return out
    run_dir = runs_dir(root) / ablation / cfg.preset / v.name / f"seed{seed}"
    log(f"run    {ablation}/{cfg.preset}/{v.name}/seed{seed} -> {os.path.relpath(path)}")
    prov = check_clean(provenance(seed=seed, base_sha256=base_sha256(cfg.preset, cfg.data)), root, allow_dirty,
                       path.with_suffix(".diff"))       # at launch: the commit whose code runs, on which base
    t0 = time.perf_counter()
    module = train_controlnet(cfg, run_dir)
    final, final_images = final_evaluation(module.base, module.controlnet, cfg, module.data)
    hist = module.history
    out = {"ablation": ablation, "variant": v.name, "preset": cfg.preset, "seed": seed,
           "provenance": prov, "config": config_dict(cfg), "complete": True,
           "history": hist, "final": hist[-1], "final_eval": final,
           "convergence_step": convergence_step(hist, fidelity_fn(cfg.data)[1], level_for(cfg, root)),
           "train_seconds_this_process": round(time.perf_counter() - t0, 1),
           "concurrent_processes": int(os.environ.get("CNREF_CONCURRENT", "1"))}
    cs = out["convergence_step"]
    out["convergence_elapsed_s"] = next((h["elapsed_s"] for h in hist if cs is not None and h["step"] >= cs), None)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path.with_suffix(".npz"), steps=np.array([h["step"] for h in hist]),
                        samples=np.stack([s.numpy() for s in module.samples]),
                        **{final_key(k): x.numpy() for k, x in final_images.items()})
    if ablation in KEEP_WEIGHTS:
        save_controlnet(module.controlnet, path.with_suffix(".safetensors"), out)
    path.write_text(json.dumps(out, indent=1))
    log(f"done   {v.name} seed {seed}: held-out IoU {hist[-1][fidelity_fn(cfg.data)[1]]:.3f} at step {hist[-1]['step']}, "
        f"convergence step {'not reached' if cs is None else round(cs)}")
    return out


def run(ablation: str, preset: str, seeds: list[int], names: list[str] | None = None,
        root: Path | None = None, force: bool = False, sets: tuple[str, ...] = (), log=print,
        allow_dirty: bool = False) -> list[dict]:
    """The runs of an ablation's variants (all, or `names`) over `seeds`; `sets`: "key=value" overrides of
    every variant's config (`presets.override`), recorded in each result's config."""
    for s in seeds:
        check_positive("seeds", s, integer=True, allow_zero=True)
    vs = [Variant(v.name, check_run(override(v.cfg, sets))) for v in variants(ablation, preset, names)]
    return [run_one(ablation, v, s, root, force, log, allow_dirty) for v in vs for s in seeds]


def run_parallel(argv: list[str], seeds: list[int], jobs: int) -> int:
    """The same command with the seeds split over `jobs` processes started at once: one small run leaves a
    GPU idle between kernel launches (the gpu preset's main process is launch-bound). Each result records
    `concurrent_processes`, so its timings are read for what they are."""
    check_positive("jobs", jobs, integer=True)
    groups = [g for g in (seeds[k::jobs] for k in range(jobs)) if g]
    env = {**os.environ, "CNREF_CONCURRENT": str(len(groups))}
    # argparse keeps an option's last value: the appended --jobs/--seeds override the user's
    procs = [subprocess.Popen([sys.executable, "-m", "cnref", *argv, "--jobs", "1",
                               "--seeds", *map(str, g)], env=env) for g in groups]
    return max(p.wait() for p in procs)


def reevaluate(path: Path, root: Path | None = None) -> dict:
    """Recompute a finished run's final evaluation from its last checkpoint with the current code
    (the result records the commit that did it, next to the training provenance)."""
    root = results_root(root)
    r = json.loads(path.read_text())
    ckpt = runs_dir(root) / r["ablation"] / r["preset"] / r["variant"] / f"seed{r['seed']}" / "ckpt" / "last.ckpt"
    if not ckpt.exists():
        fail("path", f"a result whose checkpoint {ckpt} exists", str(path))
    cfg = config_from_dict(r["config"])
    module = ControlNetTraining(cfg)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    check_trained_state(module, state)
    module.load_state_dict(state, strict=False)
    r["final_eval"], _ = final_evaluation(module.base, module.controlnet, cfg, module.data)
    r["final_eval_provenance"] = provenance()
    path.write_text(json.dumps(r, indent=1))
    return r


@torch.no_grad()
def write_validation_bounds(preset: str, data: str = "fill50k", root: Path | None = None, device: str = "cpu",
                            seeds=range(10)) -> dict:
    """The validation curves' calibration of a preset (`measure.evaluate.validation_bounds`), under bounds/."""
    proto = get_preset(preset, data).train.protocol
    res = {"provenance": provenance(), "preset": preset, "data": data,
           **validation_bounds(load_base(preset, data).to(device), proto, seeds)}
    out = validation_path(preset, data, root)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    return res


@torch.no_grad()
def write_bounds(preset: str, data: str = "fill50k", root: Path | None = None, device: str = "cpu") -> dict:
    """The calibration rows of a preset (its final evaluation's set and sampler), written under bounds/."""
    proto = get_preset(preset, data).train.protocol
    res = {"provenance": provenance(), "preset": preset, "data": data, "n": proto.final_n,
           "ddim_steps": proto.val_steps, "beta": proto.val_beta, **bounds(load_base(preset, data).to(device), proto)}
    out = bounds_path(preset, data, root)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    return res


def code_key() -> str:
    """A short hash of the package's source: smoke results made by other code are never reused."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def prepare_smoke(ablation: str, seeds=(0,), log=print, names: list[str] | None = None,
                  root: Path | None = None) -> Path:
    """Smoke mode's data for a notebook: the ablation trained for a few steps on the tiny smoke base (one seed:
    smoke mode checks that the notebook runs; the statistics over seeds are tested in tests/), and the smoke
    bounds, in runs/smoke/<hash of the code>/experiments (returned), or in `root` (the tests' own folders).
    Notebooks share the default folder, so the default run (every ablation's baseline) and the bounds are made
    once per version of the code."""
    root = root or results_root().parent / "runs" / "smoke" / code_key() / "experiments"
    data = "scenes" if ablation == "scenes" else "fill50k"
    if load_bounds("smoke", root, data) is None:
        write_bounds("smoke", data, root)
    if load_validation_bounds("smoke", root, data) is None:
        write_validation_bounds("smoke", data, root)
    run(ablation, "smoke", list(seeds), names, root=root, log=log)
    return root
