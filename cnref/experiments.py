"""The experiment runner every study uses: `python -m cnref.experiments run <ablation> --seeds 0 1 2`.

Each (ablation, preset, variant, seed) is one run. Its result file
    experiments/<ablation>/<preset>/<variant>/seed<k>.json   (+ seed<k>.npz: sample grids per validation)
holds the provenance (command, commit, device, versions, seed, full config), the validation history, the
final metrics and the convergence step. A finished run is skipped; an interrupted one resumes from its
last checkpoint under runs/; a result made with a different config is never overwritten silently.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .base import BaseConfig
from .checks import check_choice, check_positive, fail
from .controlnet import ControlNetConfig
from .metrics import fidelity_fn
from .provenance import provenance
from .train import ControlNetTrainConfig, train_controlnet

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments"
RUNS = ROOT / "runs"


@dataclass(frozen=True)
class Variant:
    name: str
    cfg: ControlNetTrainConfig


def sudden_convergence(preset: str) -> list[Variant]:
    """Fig. 4: one ControlNet, fidelity vs step; the convergence step is read off the curve."""
    return [Variant("controlnet", ControlNetTrainConfig.preset_default(preset))]


def _with(preset: str, name: str, **over) -> Variant:
    cfg = ControlNetTrainConfig.preset_default(preset)
    cn = over.pop("controlnet", {})
    return Variant(name, replace(cfg, controlnet=replace(cfg.controlnet, **cn), **over))


def zero_init(preset: str) -> list[Variant]:
    """Fig. 8b: zero convolutions vs the same convs Gaussian-initialised (two stds)."""
    return [_with(preset, "zero"), _with(preset, "gaussian_0.02", controlnet={"init": "gaussian", "gaussian_std": 0.02}),
            _with(preset, "gaussian_0.2", controlnet={"init": "gaussian", "gaussian_std": 0.2})]


def lite(preset: str) -> list[Variant]:
    """Fig. 8c: ControlNet vs ControlNet-lite (each trainable block -> one conv); four prompt settings."""
    base = ControlNetTrainConfig.preset_default(preset)
    return [_with(preset, "controlnet"), _with(preset, "lite", controlnet={"lite": True}),
            # lite did not converge within the default steps: the same run 4x longer says whether it is slow
            # or unable
            _with(preset, "lite_x4", controlnet={"lite": True}, steps=base.steps * 4, val_every=base.val_every * 4)]


def dataset_size(preset: str) -> list[Variant]:
    """Fig. 10: 1k / 10k / 50k training images vs fresh procedural samples every step."""
    return [_with(preset, f"n_{n}", n_train=n) for n in (1000, 10_000, 50_000)] + [_with(preset, "n_unbounded")]


def prompt_dropout(preset: str) -> list[Variant]:
    """The paper's 50% empty prompts vs none (the official 1.0 code)."""
    return [_with(preset, "dropout_0.5"), _with(preset, "dropout_0", prompt_dropout=0.0)]


def mid_only(preset: str) -> list[Variant]:
    """Small-scale training: only the middle block connected."""
    return [_with(preset, "full"), _with(preset, "mid_only", controlnet={"connections": "mid_only"})]


def batch_vs_steps(preset: str) -> list[Variant]:
    """docs/train.md: the convergence step vs batch size, and equal compute (batch x steps) comparisons."""
    base = ControlNetTrainConfig.preset_default(preset)
    return [_with(preset, "batch_16", batch_size=base.batch_size // 4, steps=base.steps * 4, val_every=base.val_every * 4),
            _with(preset, "batch_64"),
            _with(preset, "batch_256", accumulate=4, steps=base.steps // 4, val_every=max(1, base.val_every // 4)),
            # 125 steps end before batch 64's convergence step: only as many steps (4x the compute) can show
            # whether the jump comes at the same step
            _with(preset, "batch_256_long", accumulate=4),
            # the docs: a logical batch above 256 brings little. Half the steps at 16x64 (8x batch 64's compute)
            # against batch_256_long's first half: the lr is constant, so those steps are what a run of that
            # length would have taken
            _with(preset, "batch_1024", accumulate=16, steps=base.steps // 2)]


def timestep_sampling(preset: str) -> list[Variant]:
    """ControlNet issue #628: uniform t vs t biased to high noise levels."""
    return [_with(preset, "uniform"), _with(preset, "high_t", timesteps="high_t")]


def scenes(preset: str) -> list[Variant]:
    """Issue 9: ControlNets on two condition types of the same procedural scenes (on the scenes base),
    whose weights the guidance and composition studies load."""
    return [_with(preset, c, data="scenes", condition=c) for c in ("outline", "segmentation")]


def hint_encoders(preset: str) -> list[Variant]:
    """The official hint encoder (3x3, SiLU) vs the paper's text (4x4, ReLU), same factor."""
    return [_with(preset, "official"), _with(preset, "paper", controlnet={"hint": "paper"})]


def precision(preset: str) -> list[Variant]:
    """Not a paper claim: a diagnostic of the gpu preset, whose three seeds did not converge in 1500 steps
    under bf16 autocast, while the cpu preset (fp32) converges at step 275. One of them is the preset's default."""
    return [_with(preset, "fp32", precision="32-true"), _with(preset, "bf16", precision="bf16-mixed")]


def cond_factor(preset: str) -> list[Variant]:
    """Not a paper claim: the other suspect of the gpu preset's failure to converge. It renders conditions
    at 8x the image (512 for 64, SD's ratio, the official 8x hint encoder); the cpu preset at 1x. On 2 cores a
    training step at 8x costs 12x one at 1x (8.2 s vs 0.68 s): factor_4 is the cpu preset's affordable probe."""
    own = BaseConfig.preset(preset).cond_factor      # the preset's own factor is its default run (reused)
    return [_with(preset, f"factor_{f}", controlnet={"factor": f}, **({} if f == own else {"cond_factor": f}))
            for f in (1, 4, 8)]


ABLATIONS = {"sudden_convergence": sudden_convergence, "zero_init": zero_init, "lite": lite,
             "dataset_size": dataset_size, "prompt_dropout": prompt_dropout, "mid_only": mid_only,
             "batch_vs_steps": batch_vs_steps, "timestep_sampling": timestep_sampling, "hint_encoders": hint_encoders,
             "scenes": scenes, "precision": precision,
             "cond_factor": cond_factor}
KEEP_WEIGHTS = {"scenes"}      # ablations whose trained ControlNets later studies load (seed<k>.safetensors)


def convergence_step(history: list[dict], key: str = "iou", min_jump: float = 0.1) -> int | None:
    """The stated rule: the first validation step at which `key` crosses the midpoint between its value at
    step 0 and its plateau (the mean of the last three validations). None if it never rises by min_jump."""
    if len(history) < 4:
        return None
    start = history[0][key]
    plateau = float(np.mean([h[key] for h in history[-3:]]))
    if plateau - start < min_jump:
        return None
    mid = (start + plateau) / 2
    return next(h["step"] for h in history if h[key] >= mid)


def result_path(ablation: str, preset: str, variant: str, seed: int, root: Path = RESULTS) -> Path:
    return root / ablation / preset / variant / f"seed{seed}.json"


def config_dict(cfg: ControlNetTrainConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))


def same_config(old: dict | None, cfg: dict) -> bool:
    """Whether a stored result's config is this one. Results written before a config field existed hold
    no key for it: they ran with the field's default, which fills the gap."""
    if old is None:
        return False
    d = config_dict(ControlNetTrainConfig())
    full = {**d, **old, "controlnet": {**d["controlnet"], **old.get("controlnet", {})}}
    return full == cfg


def final_key(setting: str) -> str:
    """npz key of the final evaluation's images of one setting ("held_out/none" -> "final__held_out__none")."""
    return "final__" + setting.replace("/", "__")


def has_fid(r: dict) -> bool:
    """Results made before FID was measured hold no final images: they are not reused as baselines."""
    return all("fid" in m for m in r.get("final_eval", {}).values()) and bool(r.get("final_eval"))


def find_identical(cfg: dict, root: Path, exclude: Path) -> Path | None:
    """A finished result of any ablation with exactly this config (the default run is every ablation's
    baseline: trained once, reused, and the reuse is recorded)."""
    for p in sorted(root.glob(f"*/{cfg['preset']}/*/seed{cfg['seed']}.json")):
        if p == exclude:
            continue
        try:
            r = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if r.get("complete") and same_config(r.get("config"), cfg) and "reused_from" not in r and has_fid(r):
            return p
    return None


def run_one(ablation: str, v: Variant, seed: int, root: Path = RESULTS, force: bool = False,
            log=print) -> dict:
    cfg = replace(v.cfg, seed=seed)
    path = result_path(ablation, cfg.preset, v.name, seed, root)
    if path.exists():
        old = json.loads(path.read_text())
        if same_config(old.get("config"), config_dict(cfg)) and old.get("complete"):
            log(f"skip   {path.relative_to(root.parent)} (finished)")
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
    # checkpoints live with their results: another results root (tests, smoke notebooks) never resumes
    # from the repository's runs/
    run_dir = (RUNS if root == RESULTS else root / "_runs") / ablation / cfg.preset / v.name / f"seed{seed}"
    log(f"run    {ablation}/{cfg.preset}/{v.name}/seed{seed} -> {path.relative_to(root.parent)}")
    prov = provenance(seed=seed)          # at launch: the commit whose code runs
    t0 = time.perf_counter()
    module = train_controlnet(cfg, run_dir)
    hist = module.history
    out = {"ablation": ablation, "variant": v.name, "preset": cfg.preset, "seed": seed,
           "provenance": prov, "config": config_dict(cfg), "complete": True,
           "history": hist, "final": hist[-1], "final_eval": module.final,
           "convergence_step": convergence_step(hist, fidelity_fn(cfg.data)[1]),
           "train_seconds_this_process": round(time.perf_counter() - t0, 1),
           "concurrent_processes": int(os.environ.get("CNREF_CONCURRENT", "1"))}
    cs = out["convergence_step"]
    out["convergence_elapsed_s"] = next((h["elapsed_s"] for h in hist if h["step"] == cs), None)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path.with_suffix(".npz"), steps=np.array([h["step"] for h in hist]),
                        samples=np.stack([s.numpy() for s in module.samples]),
                        **{final_key(k): v.numpy() for k, v in module.final_images.items()})
    if ablation in KEEP_WEIGHTS:
        save_controlnet(module.controlnet, path.with_suffix(".safetensors"), out)
    path.write_text(json.dumps(out, indent=1))
    log(f"done   {v.name} seed {seed}: final {hist[-1]}, convergence step {cs}")
    return out


def run(ablation: str, preset: str, seeds: list[int], variants: list[str] | None = None,
        root: Path = RESULTS, force: bool = False, **over) -> list[dict]:
    check_choice("ablation", ablation, set(ABLATIONS))
    check_choice("preset", preset, {"smoke", "cpu", "gpu"})
    vs = ABLATIONS[ablation](preset)
    if variants:
        for name in variants:
            check_choice("variants", name, {v.name for v in vs})
        vs = [v for v in vs if v.name in variants]
    if over:
        vs = [Variant(v.name, replace(v.cfg, **over)) for v in vs]
    return [run_one(ablation, v, s, root, force) for v in vs for s in seeds]


def load_results(ablation: str, preset: str, root: Path = RESULTS) -> list[dict]:
    """Every committed result of an ablation at a preset (what the notebooks draw)."""
    return [json.loads(p.read_text()) for p in sorted((root / ablation / preset).glob("*/seed*.json"))]


def reevaluate(path: Path, root: Path = RESULTS) -> dict:
    """Recompute a finished run's final evaluation from its last checkpoint with the current code
    (the result records the commit that did it, next to the training provenance)."""
    from .train import ControlNetTraining
    import torch
    r = json.loads(path.read_text())
    ckpt = RUNS / r["ablation"] / r["preset"] / r["variant"] / f"seed{r['seed']}" / "ckpt" / "last.ckpt"
    if not ckpt.exists():
        fail("path", f"a result whose checkpoint {ckpt} exists", str(path))
    cfg = ControlNetTrainConfig(**{**r["config"], "controlnet": ControlNetConfig(**r["config"]["controlnet"])})
    module = ControlNetTraining(cfg)
    module.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"])
    r["final_eval"] = module.final_eval()
    r["final_eval_provenance"] = provenance()
    path.write_text(json.dumps(r, indent=1))
    return r


def save_controlnet(net, path: Path, result: dict) -> None:
    from safetensors.torch import save_file
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(path),
              metadata={"config": json.dumps(result["config"]), "provenance": json.dumps(result["provenance"])})


def load_controlnet(result: dict, base, root: Path = RESULTS):
    """The trained ControlNet of a finished run of a KEEP_WEIGHTS ablation, over `base`'s locked UNet."""
    from safetensors.torch import load_file
    from .controlnet import ControlNet
    path = result_path(result["ablation"], result["preset"], result["variant"], result["seed"], root)
    w = path.with_suffix(".safetensors")
    if not w.exists():
        fail("result", f"a run whose weights {w.name} were kept (ablations {sorted(KEEP_WEIGHTS)})",
             f"{result['ablation']}/{result['variant']}/seed{result['seed']}")
    net = ControlNet(base.unet, ControlNetConfig(**result["config"]["controlnet"]))
    net.load_state_dict(load_file(str(w)), strict=True)
    return net.eval()


def load_samples(result: dict, root: Path = RESULTS):
    """The sample grids (uint8, one per validation) and their steps saved beside a result."""
    return np.load(result_path(result["ablation"], result["preset"], result["variant"], result["seed"], root)
                   .with_suffix(".npz"))


SUITE = ["zero_init", "lite", "prompt_dropout", "hint_encoders", "timestep_sampling", "mid_only",
         "batch_vs_steps", "dataset_size"]     # issue 8's training ablations, cheapest claims first
SUITE_SEEDS = (0, 1, 2)                        # the suite's seeds (issue 8: "3 seeds each")


def tally(bucket: dict, wall_s: float) -> None:
    """One more run of wall_s seconds in a compute bucket ({"runs", "wall_s"})."""
    bucket["runs"] += 1
    bucket["wall_s"] = round(bucket["wall_s"] + wall_s, 1)


def compute_report(preset: str, root: Path = RESULTS) -> dict:
    """The compute a preset's results cost: wall seconds of every trained (not reused) run, per ablation
    and device (wall time includes validation and the final evaluation), and of every study seed
    (studies/<study>, issue 9). `suite_s`/`suite_runs`: the part that is issue 8's suite (`SUITE` x `SUITE_SEEDS`);
    `long`: the suite's runs that see more images than the preset's default run (follow-ups such as lite_x4);
    `extra_seeds`: runs of the suite's ablations on further seeds (added where 3 seeds left a verdict unclear)."""
    default = ControlNetTrainConfig.preset_default(preset)
    default_images = default.steps * default.accumulate * default.batch_size
    out: dict = {"total_s": 0.0, "runs": 0, "reused": 0, "suite_s": 0.0, "suite_runs": 0,
                 "long": {"runs": 0, "wall_s": 0.0, "variants": []},
                 "extra_seeds": {"runs": 0, "wall_s": 0.0, "seeds": []}, "by_ablation": {}, "devices": {}}
    for p in sorted(root.glob(f"*/{preset}/*/seed*.json")):
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


def run_parallel(argv: list[str], seeds: list[int], jobs: int) -> int:
    """The same command with the seeds split over `jobs` processes started at once: one small run leaves a
    GPU idle between kernel launches (the gpu preset's main process is launch-bound). Each result records
    `concurrent_processes`, so its timings are read for what they are."""
    import subprocess
    groups = [g for g in (seeds[k::jobs] for k in range(jobs)) if g]
    env = {**os.environ, "CNREF_CONCURRENT": str(len(groups))}
    # argparse keeps an option's last value: the appended --jobs/--seeds override the user's
    procs = [subprocess.Popen([sys.executable, "-m", "cnref.experiments", *argv, "--jobs", "1",
                               "--seeds", *map(str, g)], env=env) for g in groups]
    return max(p.wait() for p in procs)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m cnref.experiments", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run (or resume, or skip) the runs of an ablation")
    r.add_argument("ablation", choices=sorted(ABLATIONS))
    r.add_argument("--preset", default="cpu", choices=["cpu", "gpu"])
    r.add_argument("--smoke", action="store_true", help="tiny base and steps, results under runs/smoke")
    r.add_argument("--seeds", type=int, nargs="+", default=list(SUITE_SEEDS))
    r.add_argument("--variants", nargs="+")
    r.add_argument("--steps", type=int, help="override the preset's step count (the result says so)")
    r.add_argument("--force", action="store_true", help="replace results made with another config")
    r.add_argument("--root", type=Path, help="results folder (default: experiments/; with --smoke runs/smoke/...)")
    sub.add_parser("list", help="list the ablations and their variants")
    su = sub.add_parser("suite", help="every training ablation of issue 8, in order (resumes, skips, reuses)")
    su.add_argument("--preset", default="cpu", choices=["cpu", "gpu"])
    su.add_argument("--seeds", type=int, nargs="+", default=list(SUITE_SEEDS))
    for p in (r, su):
        p.add_argument("--jobs", type=int, default=1, help="split the seeds over this many processes at once "
                       "(several small runs fill one GPU better than one; each result records how many shared it)")
    co = sub.add_parser("compute", help="how much wall time the committed results of a preset cost")
    co.add_argument("--preset", default="cpu", choices=["cpu", "gpu"])
    rv = sub.add_parser("reeval", help="recompute final evaluations from checkpoints (current code)")
    rv.add_argument("results", type=Path, nargs="+")
    a = ap.parse_args(argv)
    if getattr(a, "jobs", 1) != 1:
        check_positive("jobs", a.jobs, integer=True)
        argv = list(sys.argv[1:] if argv is None else argv)
        sys.exit(run_parallel(argv, a.seeds, a.jobs))
    if a.cmd == "reeval":
        for p in a.results:
            print(p, reevaluate(p)["final_eval"])
        return
    if a.cmd == "suite":
        for abl in SUITE:
            run(abl, a.preset, a.seeds)
        print(json.dumps(compute_report(a.preset), indent=1))
        return
    if a.cmd == "compute":
        print(json.dumps(compute_report(a.preset), indent=1))
        return
    if a.cmd == "list":
        for name, f in ABLATIONS.items():
            print(name, [v.name for v in f("cpu")])
        return
    preset = "smoke" if a.smoke else a.preset
    root = a.root or (RUNS / "smoke" / "experiments" if a.smoke else RESULTS)
    over = {"steps": a.steps} if a.steps else {}
    run(a.ablation, preset, a.seeds, a.variants, root, a.force, **over)


if __name__ == "__main__":
    main()
