"""One command line: `python -m cnref <verb> ...`.

Every verb that makes something takes `--preset smoke|cpu|gpu` and `--set key=value ...`, which overrides any
field of the preset's config (dotted keys reach nested configs: `--set lr=3e-4 steps=1000
control.factor=4`); a run records the resulting config in its result file. A bad argument is one line
on stderr and exit status 2, never a traceback. Why this module is long: every verb's arguments and dispatch sit
in one place, so that a reader finds any command here.

    list                                   the ablations and their variants
    run <ablation> [--seeds ..] [--variants ..]   run, resume, skip or reuse an ablation's runs
    suite                                  every training ablation of the paper, in order
    study <study|all>                      inference-time sweeps over trained ControlNets (scenes; gain: before_jump)
    train base|controlnet                  pretrain a base / train one ControlNet into a run folder
    evaluate bounds|validation|base        calibration rows / colour fidelity of the shipped base
    bench train|sample|sd15|plot|instrument|successors|flops   speed ratios and costs measured in one process
    visibility                             how visible the disc is at each timestep
    report readme|verdicts                 the README's claims table / every claim's verdict
    compute                                the wall time the committed results cost
    reeval <result.json ...>               recompute final evaluations from checkpoints
    book [notebook ...] [--render]         execute the notebooks on the committed results into book/, render the site
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import matplotlib
import torch

from .measure.bench import SD15_MODES, bench_sample, bench_sd15, bench_train, bench_train_processes, sd15_mode
from .mini.base import build_unet
from .checks import check_positive
from .measure.costs import bench_instrument, bench_successors, bench_successors_processes, count_flops
from .measure.evaluate import base_quality
from .lab.ablations import ABLATIONS, SUITE, SUITE_SEEDS, variants
from .lab.claims import CLAIMS
from .lab.compute import compute_report
from .lab.results import results_root, scratch_root
from .lab.runner import reevaluate, run, run_parallel, write_bounds, write_validation_bounds
from .lab.studies import STUDIES, run_study
from .mini.presets import NAMES, override, preset
from .provenance import provenance
from .mini.shipping import base_path, load_base
from .mini.train import pretrain_base, train_controlnet
from .views.book import build, stale
from .views.figures import plot_sd15_bench
from .views.readme import readme_rows, write_readme
from .views.rerun import compare_to_committed
from .views.tables import print_study_verdicts, print_verdicts, ratios
from .measure.visibility import TIMESTEPS, open_share, visibility


def _preset(p: argparse.ArgumentParser, default: str = "cpu") -> None:
    p.add_argument("--preset", default=default, choices=NAMES)


def _sets(p: argparse.ArgumentParser) -> None:
    # "extend": a later --set adds to an earlier one and wins on the same key (run.sh sets defaults first)
    p.add_argument("--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config fields, e.g. --set lr=3e-4 steps=1000 control.factor=4")


def _write(path: Path, res: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1))
    print(f"wrote {path}")


class Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported in one line (not the usage block): see --help for that."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parser() -> argparse.ArgumentParser:
    ap = Parser(prog="python -m cnref", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="verb", required=True, parser_class=Parser)
    sub.add_parser("list", help="the ablations and their variants")
    r = sub.add_parser("run", help="run (or resume, skip, reuse) the runs of an ablation")
    r.add_argument("ablation", choices=sorted(ABLATIONS))
    r.add_argument("--variants", nargs="+")
    r.add_argument("--force", action="store_true", help="replace results made with another config")
    r.add_argument("--record", action="store_true", help="write into experiments/ (the committed results); by "
                   "default a run goes to runs/scratch/experiments and is shown against the committed seeds")
    r.add_argument("--allow-dirty", action="store_true", help="record a run made from uncommitted code in "
                   "experiments/, with the diff written next to its result (refused otherwise)")
    su = sub.add_parser("suite", help="every training ablation of the paper, in order (resumes, skips, reuses)")
    for p in (r, su):
        _preset(p)
        _sets(p)
        p.add_argument("--seeds", type=int, nargs="+", default=list(SUITE_SEEDS))
        p.add_argument("--root", type=Path, help="results folder (default: experiments/ here or above)")
        p.add_argument("--jobs", type=int, default=1, help="split the seeds over this many processes at once "
                       "(several small runs fill one GPU better than one; each result records how many shared it)")
    st = sub.add_parser("study", help="inference-time sweeps over trained ControlNets")
    st.add_argument("study", choices=[*STUDIES, "all"])
    _preset(st)
    st.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    st.add_argument("--root", type=Path)
    t = sub.add_parser("train", help="pretrain the base, or train one ControlNet, into a run folder (resumes)")
    t.add_argument("what", choices=["base", "controlnet"])
    _preset(t)
    _sets(t)
    t.add_argument("--run-dir", type=Path, required=True)
    t.add_argument("--weights", type=Path, help="base: where to write the shipped-form weights "
                   "(default: <run-dir>/base.safetensors; the shipped file is replaced only by naming it)")
    t.add_argument("--devices", type=int, default=1, help="controlnet: DDP over this many processes")
    e = sub.add_parser("evaluate", help="calibration rows (bounds: the final evaluation's; validation: the "
                       "validation curves', by sampler seed) or the base's colour fidelity (base)")
    e.add_argument("what", choices=["bounds", "validation", "base"])
    e.add_argument("--seeds", type=int, nargs="+", default=list(range(10)), help="validation: the sampler seeds")
    _preset(e)
    e.add_argument("--data", default="fill50k", choices=["fill50k", "scenes"])
    e.add_argument("--root", type=Path)
    b = sub.add_parser("bench", help="speed ratios measured in one process (modes interleaved)")
    b.add_argument("what", choices=["train", "sample", "sd15", "sd15-mode", "plot", "instrument", "successors",
                                    "flops"])
    _preset(b)
    b.add_argument("--batch", type=int, nargs="+", default=None)
    b.add_argument("--repeats", type=int, default=None)
    b.add_argument("--modes", nargs="+")
    b.add_argument("--mode", choices=SD15_MODES, help="sd15-mode (internal): one mode in this process")
    b.add_argument("--width", type=int, default=320, help="sd15: 320 = SD1.5 (859.5M UNet parameters)")
    b.add_argument("--rounds", type=int, default=1, help="sd15: repeat the sequence of modes, interleaving them")
    b.add_argument("--processes", type=int, default=1, help="train, successors: repeat the bench in this many fresh "
                   "processes (one ratio each: the n of a speed claim); writes bench/<what>_<preset>_processes.json")
    b.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    b.add_argument("--out", type=Path)
    v = sub.add_parser("visibility", help="how visible the disc is in z_t at each timestep")
    v.add_argument("--presets", nargs="+", default=["cpu", "gpu"], choices=NAMES)
    v.add_argument("--n", type=int, default=64)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--root", type=Path)
    rp = sub.add_parser("report", help="the README's claims table (--write: into README.md) or every verdict")
    rp.add_argument("what", choices=["readme", "verdicts"])
    _preset(rp)
    rp.add_argument("--write", type=Path, metavar="README")
    rp.add_argument("--root", type=Path)
    co = sub.add_parser("compute", help="how much wall time the committed results of a preset cost")
    _preset(co)
    co.add_argument("--root", type=Path)
    rv = sub.add_parser("reeval", help="recompute final evaluations from checkpoints (current code)")
    rv.add_argument("results", type=Path, nargs="+")
    bk = sub.add_parser("book", help="execute every notebook in full mode into book/ and render the HTML site")
    bk.add_argument("notebooks", nargs="*", help="only these (stem prefixes, e.g. 04 18); default: all")
    bk.add_argument("--render", action="store_true", help="only render the site from book/ (no execution)")
    bk.add_argument("--check", action="store_true", help="list the executed notebooks that are stale; exit 1 if any")
    bk.add_argument("--site", type=Path, help="where the HTML goes (default: runs/book)")
    return ap


def dispatch(a: argparse.Namespace, argv: list[str]) -> int:
    if a.verb == "list":
        for name, abl in ABLATIONS.items():
            print(name, [x.name for x in abl.variants("cpu")])
    elif a.verb in ("run", "suite"):
        check_positive("jobs", a.jobs, integer=True)
        if a.jobs != 1:
            return run_parallel(argv, a.seeds, a.jobs)
        root = a.root or (results_root() if a.verb == "suite" or a.record else scratch_root())
        for abl in ([a.ablation] if a.verb == "run" else SUITE):
            run(abl, a.preset, a.seeds, getattr(a, "variants", None), root, getattr(a, "force", False), a.sets,
                allow_dirty=getattr(a, "allow_dirty", False))
        if a.verb == "suite":
            print(json.dumps(compute_report(a.preset, root), indent=1))
        elif results_root(root) != results_root():
            compare_to_committed(a.ablation, a.preset, results_root(root), results_root(), a.seeds,
                                 results_root(root).parent / f"{a.ablation}_{a.preset}.png")
    elif a.verb == "study":
        torch.set_grad_enabled(False)
        for study in (STUDIES if a.study == "all" else [a.study]):
            for seed in a.seeds:
                run_study(study, a.preset, seed, a.root)
    elif a.verb == "train":
        train(a)
    elif a.verb == "evaluate":
        evaluate(a)
    elif a.verb == "bench":
        bench(a)
    elif a.verb == "visibility":
        res = {"provenance": provenance(seed=a.seed), "timesteps": list(TIMESTEPS),
               "presets": {p: visibility(preset(p).base, TIMESTEPS, a.n, a.seed) for p in a.presets}}
        for p, r in res["presets"].items():
            r["open_share"] = {kind: round(open_share(r, kind), 4) for kind in ("uniform", "high_t")}
            print(f"{p} ({r['size']}x{r['size']}): chance {r['chance_iou']:.2f}; "
                  + ", ".join(f"t={row['t']}: {row['iou']:.2f}" for row in r["rows"])
                  + f"; open share: uniform t {r['open_share']['uniform']:.3f}, high_t {r['open_share']['high_t']:.3f}")
        _write(results_root(a.root) / "visibility" / "visibility.json", res)
    elif a.verb == "report":
        if a.what == "readme" and a.write:
            write_readme(a.write, a.preset, a.root)
        elif a.what == "readme":
            print(readme_rows(a.preset, a.root))
        else:
            for abl in dict.fromkeys(c.ablation for c in CLAIMS):
                print_verdicts(abl, a.preset, a.root)
            for study in STUDIES:
                print_study_verdicts(study, a.preset, a.root)
    elif a.verb == "compute":
        print(json.dumps(compute_report(a.preset, a.root), indent=1))
    elif a.verb == "book":
        repo = results_root().parent
        if a.check:
            why = stale(repo)
            print("\n".join(why) or "every executed notebook matches its source and results")
            return 1 if why else 0
        pages = build(repo, a.notebooks, execute_first=not a.render, site=a.site)
        print(f"open {pages[0]} ({len(pages) - 1} notebooks)")
    elif a.verb == "reeval":
        for p in a.results:
            print(p, reevaluate(p)["final_eval"])
    return 0


def train(a: argparse.Namespace) -> None:
    if a.what == "base":
        p = preset(a.preset)
        cfg = override(p.base_train, a.sets)
        if cfg.data != p.base_train.data:
            cfg = override(preset(a.preset, cfg.data).base_train, a.sets)
        out = pretrain_base(cfg, a.run_dir, a.weights or a.run_dir / "base.safetensors")
        print(f"wrote {out} (the shipped base is {base_path(cfg.preset, cfg.data)})")
        return
    cfg = override(preset(a.preset).train, a.sets)
    m = train_controlnet(cfg, a.run_dir, devices=a.devices)
    print(f"trained {cfg.steps} steps into {a.run_dir}: last validation {m.history[-1]}")


def evaluate(a: argparse.Namespace) -> None:
    torch.set_grad_enabled(False)
    device = "cuda" if torch.cuda.is_available() else "cpu"      # sampling follows the base's device
    if a.what == "validation":
        res = write_validation_bounds(a.preset, a.data, a.root, device, a.seeds)
        print(json.dumps({k: res[k] for k in ("ground_truth", "base")}, indent=1))
        return
    if a.what == "bounds":
        res = write_bounds(a.preset, a.data, a.root, device)
        print(json.dumps({k: res[k] for k in ("ground_truth", "base")}, indent=1))
        return
    n, steps, betas = 256, 20, (3.0, 5.0, 9.0)
    res = {"provenance": provenance(), "preset": a.preset, "n": n, "ddim_steps": steps,
           "results": base_quality(load_base(a.preset).to(device), n, betas, steps)}
    print(json.dumps(res["results"], indent=1))
    _write(results_root(a.root) / "base" / a.preset / "quality.json", res)


def plot_sd15(path: Path) -> None:
    matplotlib.use("Agg")
    out = path.with_suffix(".png")
    plot_sd15_bench(json.loads(path.read_text())).savefig(out, dpi=110)
    print(f"wrote {out}")


def bench(a: argparse.Namespace) -> None:
    check_positive("processes", a.processes, integer=True)
    if a.what == "plot":
        plot_sd15(a.out)
    elif a.what == "sd15-mode":
        print(json.dumps(sd15_mode(a.mode, a.width, (a.batch or [1])[0], a.repeats or 5, a.device)))
    elif a.what == "sd15":
        if a.out is None:
            raise ValueError("`--out`: expected a path for the sd15 result JSON, received none")
        runs = [bench_sd15(a.width, bs, a.repeats or 5, a.device, a.modes or SD15_MODES, rounds=a.rounds)
                for bs in (a.batch or [1])]
        _write(a.out, {"provenance": provenance(), "runs": runs})
        plot_sd15(a.out)
    elif a.what == "successors" and a.processes > 1:
        with tempfile.TemporaryDirectory() as tmp:
            procs = bench_successors_processes(a.preset, a.repeats or 3, a.processes, tmp)
        for k, r in ratios(None, procs).items():
            print(f"{k:14s} sampling cost / the ControlNet's, per process: "
                  + ", ".join(f"{x:.3f}" for x in r["sample"]))
        _write(a.out or results_root() / "bench" / f"successors_{a.preset}_processes.json",
               {"provenance": provenance(), "preset": a.preset, "repeats": a.repeats or 3, "processes": procs})
    elif a.what == "successors":
        res = bench_successors(a.preset, repeats=a.repeats or 3)
        for k, v in res["kinds"].items():
            print(f"{k:14s} {v['trainable_params']:>9,d} trainable  training x{v['train_speed_vs_controlnet']} "
                  f"the ControlNet's images/s  sampling cost x{v['sample_cost_vs_controlnet']} per image")
        _write(a.out or results_root() / "bench" / f"successors_{a.preset}.json",
               {"provenance": provenance(), **res})
    elif a.what == "flops":
        res = {"provenance": provenance(), "shapes": [count_flops(shape) for shape in ("cpu", "sd15")]}
        for r in res["shapes"]:
            for k, v in r["kinds"].items():
                print(f"{r['shape']:5s} {k:14s} {v['trainable_params']:>12,d} trainable  training step "
                      f"{v['train_step_gflop']:9.2f} GFLOP (x{v['train_vs_controlnet']})  image {v['image_gflop']:10.1f} "
                      f"GFLOP (x{v['image_vs_controlnet']})")
        _write(a.out or results_root() / "bench" / "flops.json", res)
    elif a.what == "instrument":
        vs = variants("learning_rate", a.preset)
        cfg = replace(vs[1].cfg, instrument=True)
        res = bench_instrument(cfg, {v.name: (v.cfg.steps, v.cfg.val_every) for v in vs}, a.repeats or 5)
        for k, v in res["runs"].items():
            print(f"{k:10s} {v['validations']:3d} validations: the probe adds {100 * v['overhead']:.1f}% to the run")
        _write(a.out or results_root() / "bench" / f"instrument_{a.preset}.json",
               {"provenance": provenance(), "preset": a.preset, **res})
    elif a.what == "sample":
        res = {"provenance": provenance(), **bench_sample(a.preset, 64, 20, repeats=a.repeats or 3,
                                                         factor=preset(a.preset).train.cond_factor)}
        for k, v in res["modes"].items():
            print(f"{k:24s} {v['img_per_s']:8.1f} img/s  x{v['speed_vs_pipeline_loop']} vs the pipeline loop")
        print("max |pixel difference|:", res["max_abs_pixel_diff"])
        if a.out:
            _write(a.out, res)
    elif a.processes > 1:
        modes = a.modes or ["cnref", "cnref_mid"]
        root = results_root()
        with tempfile.TemporaryDirectory() as tmp:
            procs = bench_train_processes(a.preset, modes, (a.batch or [64])[0], a.repeats or 15, a.processes, tmp)
        step_ratios = [p[modes[1]]["median_step_s"] / p[modes[0]]["median_step_s"] for p in procs]
        print(f"{modes[1]} / {modes[0]} step time per process: " + ", ".join(f"{r:.3f}" for r in step_ratios))
        _write(a.out or root / "bench" / f"train_{a.preset}_processes.json",
               {"provenance": provenance(), "preset": a.preset, "batch": (a.batch or [64])[0],
                "repeats": a.repeats or 15, "modes": modes, "processes": procs})
    else:
        p = preset(a.preset)
        torch.manual_seed(0)
        modes = a.modes or ["diffusers", "cnref", "plain", "cnref_mid", "cnref_adamw_loop"]
        res = bench_train(build_unet(p.base), p.train.cond_factor, (a.batch or [64])[0], a.repeats or 15, modes,
                          p.base.max_tokens)
        res = {"provenance": provenance(), "preset": a.preset, **res}
        for k, v in res["modes"].items():
            print(f"{k:10s} {v['img_per_s']:8.1f} img/s  x{v['speed_vs_diffusers']} vs diffusers")
        if a.out:
            _write(a.out, res)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parser().parse_args(argv)
    try:
        return dispatch(a, argv)
    except (ValueError, FileNotFoundError) as e:      # bad input: one line, no traceback
        print(f"python -m cnref {a.verb}: error: {e}", file=sys.stderr)
        return 2
