"""Inference-time studies on the trained scene ControlNets (issue 9): sweeps of sampling settings over one
held-out set of scenes, repeated for every trained seed.

- `cfg` (Fig. 5): where the control goes under classifier-free guidance, guidance.MODES: both branches
  (the official code), the conditional branch only, and conditional only with CFG resolution weighting
  w_i = 64 / h_i (generalised to h_max / h_i); guidance scale beta 1..12; with the perfect prompt and none.
- `guess`: guess mode (no prompt, the control in the conditional branch only) with the official scales
  0.825 ** (12 - i), diffusers' logspace(-1, 0, 13) and uniform ones.
- `strength`: one control strength s (w_i = s) from 0 to 2, perfect prompt, control in both branches.
- `compose` (Fig. 6): the outline and the segmentation ControlNets together, by plain sum (the paper) and by
  a 0.5 / 0.5 weighted sum, against each alone; on matched conditions (one scene) and conflicting ones
  (the outline of one scene, the segmentation of another). Also checks that diffusers' MultiControlNetModel
  over the exported pair gives the same residuals.

Every sample set is measured with metrics.scene_fidelity (against each scene it may follow) and FID.
`python -m cnref.studies run <study> --preset cpu --seeds 0 1 2` writes
experiments/studies/<preset>/<study>/seed<k>.json (+ .npz with the first images of each setting); a finished
seed is skipped, an unfinished one is redone.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checks import check_choice, fail
from .control import compose, connection_scales
from .data import VAL_SEED, dataset
from .experiments import RESULTS, load_controlnet, load_results
from .guidance import MODES
from .metrics import FID, scene_fidelity, summarize
from .provenance import provenance
from .sample import generate
from .train import ControlNetTrainConfig

NETS = ("outline", "segmentation")      # the `scenes` ablation's variants


@dataclass(frozen=True)
class Setting:
    """One way of sampling: which ControlNets (variants of `scenes`) on which scene ("same" = the held-out
    scenes, "other" = a second, disjoint set), each with a weight, a per-connection scale kind and one
    strength; the prompt (perfect / none), the guidance scale and where the control goes."""
    name: str
    nets: tuple[str, ...] = ("outline",)
    scenes: tuple[str, ...] = ("same",)
    weights: tuple[float, ...] = (1.0,)
    scale_kind: str = "uniform"
    strength: float = 1.0
    prompt: str = "perfect"
    beta: float = 3.0
    mode: str = "both"


def settings(study: str, beta: float) -> list[Setting]:
    """The sweep of a study; beta: the engine's CFG scale, where a study does not sweep it."""
    check_choice("study", study, set(STUDIES))
    if study == "cfg":
        return [Setting(f"{m}/beta{b:g}/{p}", mode=m, beta=b, prompt=p)
                for p in ("none", "perfect") for m in sorted(MODES) for b in (1.0, 3.0, 6.0, 9.0, 12.0)]
    if study == "guess":
        return [Setting(f"{k}/beta{b:g}", scale_kind=k, beta=b, prompt="none", mode="cond_only")
                for k in ("uniform", "guess_official", "guess_diffusers") for b in (3.0, 9.0)]
    if study == "strength":
        return [Setting(f"s{s:g}", strength=s, beta=beta) for s in (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)]
    out = []
    for p in ("none", "perfect"):
        out += [Setting(f"matched/{p}/outline", prompt=p, beta=beta),
                Setting(f"matched/{p}/segmentation", nets=("segmentation",), prompt=p, beta=beta)]
        out += [Setting(f"matched/{p}/{n}", nets=NETS, scenes=("same", "same"), weights=(w, w), prompt=p, beta=beta)
                for n, w in (("sum", 1.0), ("weighted", 0.5))]
    # conflicting: the outline of the held-out scenes, the segmentation of others; no prompt favours either
    out += [Setting(f"conflicting/none/{n}", nets=NETS, scenes=("same", "other"), weights=(w, w), prompt="none",
                    beta=beta) for n, w in (("sum", 1.0), ("weighted", 0.5))]
    return out


STUDIES = {"cfg": "Fig. 5: CFG modes x guidance scale", "guess": "guess-mode scales",
           "strength": "control strength", "compose": "Fig. 6: multi-ControlNet composition"}


@torch.no_grad()
def scenes_batches(base, n: int) -> dict[tuple[str, str], dict]:
    """(scene set, condition type) -> held-out batch: "same" = indices 0..n-1, "other" = n..2n-1."""
    out = {}
    for which, start in (("same", 0), ("other", n)):
        for cond in NETS:
            out[which, cond] = dataset("scenes", size=base.cfg.size, cond_factor=base.cfg.cond_factor,
                                       seed=VAL_SEED, condition=cond).batch(range(start, start + n))
    return out


@torch.no_grad()
def sample_setting(base, nets: dict, batches: dict, s: Setting, steps: int, seed: int) -> torch.Tensor:
    """The images of one setting: prompts of the held-out ("same") scenes or none, the ControlNets named by
    s.nets on their scenes, scale w_k * strength * (per-connection kind) each."""
    same = batches["same", s.nets[0]]
    prompts = same["prompt"] if s.prompt == "perfect" else [""] * len(same["prompt"])
    pairs = [(nets[k], batches[sc, k]["cond"]) for k, sc in zip(s.nets, s.scenes)]
    scales = [connection_scales(s.scale_kind, s.strength * w) for w in s.weights]
    return generate(base, prompts, pairs, steps=steps, beta=s.beta, mode=s.mode, scales=scales, seed=seed).float()


def measure(images: torch.Tensor, batches: dict, s: Setting, fid: FID) -> dict:
    """scene_fidelity against the held-out scenes (and, when a ControlNet saw other scenes, against those:
    keys other_*), and FID."""
    out = {**summarize(scene_fidelity(images, batches["same", "outline"])), "fid": fid(images)}
    if "other" in s.scenes:
        out.update({f"other_{k}": v for k, v in summarize(scene_fidelity(images, batches["other", "outline"])).items()})
    return out


@torch.no_grad()
def multicontrolnet_check(base, nets: dict, batches: dict, weights=(1.0, 0.5), seed: int = 0) -> dict:
    """cnref's weighted composition vs diffusers' MultiControlNetModel over the exported pair, on one noisy
    batch: the largest absolute difference of the 13 residuals."""
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel
    from .interop import to_diffusers
    b = batches["same", "outline"]
    k = min(8, len(b["prompt"]))
    g = torch.Generator().manual_seed(seed)
    size = base.cfg.size
    z_t = torch.randn(k, base.unet.config.in_channels, size, size, generator=g)
    t = torch.randint(0, base.cfg.num_train_timesteps, (k,), generator=g)
    c_t = base.encode_prompt(b["prompt"][:k])
    conds = [batches["same", n]["cond"][:k] for n in NETS]
    ours = compose([nets[n](z_t, t, c_t, c) for n, c in zip(NETS, conds)], list(weights))
    multi = MultiControlNetModel([to_diffusers(nets[n], base.unet) for n in NETS]).eval()
    down, mid = multi(z_t, t, c_t, conds, list(weights), return_dict=False)
    diff = max(float((a - b_).abs().max()) for a, b_ in zip(ours.residuals, (*down, mid)))
    scale = max(float(r.abs().max()) for r in ours.residuals)
    return {"weights": list(weights), "max_abs_diff": diff, "max_abs_residual": scale}


def study_path(study: str, preset: str, seed: int, root: Path = RESULTS) -> Path:
    return root / "studies" / preset / study / f"seed{seed}.json"


def trained_nets(base, preset: str, seed: int, root: Path = RESULTS) -> tuple[dict, dict]:
    """The `scenes` ControlNets of one seed, and where they came from."""
    rs = {r["variant"]: r for r in load_results("scenes", preset, root) if r["seed"] == seed}
    missing = [n for n in NETS if n not in rs]
    if missing:
        fail("seed", f"a seed with trained scenes ControlNets {list(NETS)} (python -m cnref.experiments run "
                     f"scenes --preset {preset} --seeds {seed})", f"{seed}: missing {missing}")
    return ({n: load_controlnet(rs[n], base, root) for n in NETS},
            {n: f"scenes/{preset}/{n}/seed{seed}.json" for n in NETS})


def run_study(study: str, preset: str, seed: int, root: Path = RESULTS, keep: int = 8, log=print) -> dict:
    from .base import load_base
    path = study_path(study, preset, seed, root)
    eng = ControlNetTrainConfig.preset_default(preset)
    cfg = {"study": study, "n": eng.final_n, "ddim_steps": eng.val_steps, "sample_seed": seed + 1,
           "settings": [asdict(s) for s in settings(study, eng.val_beta)]}
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("config") == json.loads(json.dumps(cfg)):
            log(f"skip   {path.relative_to(root.parent)} (finished)")
            return old
    base = load_base(preset, "scenes")
    nets, sources = trained_nets(base, preset, seed, root)
    batches = scenes_batches(base, eng.final_n)
    fid = FID(base)
    prov = provenance(seed=seed)
    t0 = time.perf_counter()
    rows, images = {}, {}
    for s in tqdm(settings(study, eng.val_beta), desc=f"{study} seed {seed}"):
        x = sample_setting(base, nets, batches, s, eng.val_steps, seed + 1)
        rows[s.name] = measure(x, batches, s, fid)
        images[s.name] = ((x[:keep] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    out = {"study": study, "preset": preset, "seed": seed, "provenance": prov, "config": cfg,
           "controlnets": sources, "results": rows}
    if study == "compose":
        out["multicontrolnet"] = multicontrolnet_check(base, nets, batches, seed=seed)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path.with_suffix(".npz"), **{k.replace("/", "__"): v for k, v in images.items()})
    path.write_text(json.dumps(out, indent=1))
    log(f"done   {study} seed {seed}")
    return out


def load_study(study: str, preset: str, root: Path = RESULTS) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / "studies" / preset / study).glob("seed*.json"))]


def study_images(result: dict, root: Path = RESULTS) -> dict[str, np.ndarray]:
    """The kept images of each setting of a study result, by setting name."""
    z = np.load(study_path(result["study"], result["preset"], result["seed"], root).with_suffix(".npz"))
    return {k.replace("__", "/"): z[k] for k in z.files}


# ---------------------------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class StudyClaim:
    """A claim about two settings of a study, judged per trained seed by report.judge (one rule for all).
    a / b: setting names, "multicontrolnet" (the diffusers check) or "const:<x>"."""
    study: str
    text: str
    paper: str
    a: str
    b: str
    expect: str
    key: str = "edge_f1"
    tol: float = 0.0


STUDY_CLAIMS = [
    StudyClaim("cfg", "No prompt: with the control in both branches CFG does nothing (beta 9 = beta 1)",
               "Sec. 3.4, Fig. 5b", "both/beta9/none", "both/beta1/none", "=", tol=0.005),
    StudyClaim("cfg", "No prompt: control in the conditional branch only makes guidance strong (edge F1 above "
               "both branches, beta 9)", "Fig. 5c", "cond_only/beta9/none", "both/beta9/none", ">"),
    StudyClaim("cfg", "... at a cost in image quality (FID above both branches, beta 9)", "Fig. 5c",
               "cond_only/beta9/none", "both/beta9/none", ">", key="fid"),
    StudyClaim("cfg", "CFG resolution weighting (w_i = 64/h_i) improves image quality over conditional-only "
               "(FID, beta 9, no prompt)", "Fig. 5d", "cond_only_weighted/beta9/none", "cond_only/beta9/none", "<",
               key="fid"),
    StudyClaim("cfg", "CFG resolution weighting keeps the condition (edge F1 within 0.05 of conditional-only, "
               "beta 9, no prompt)", "Fig. 5d", "cond_only_weighted/beta9/none", "cond_only/beta9/none", "=",
               tol=0.05),
    StudyClaim("cfg", "With the perfect prompt, where the control goes matters little (edge F1 within 0.05, "
               "both vs conditional-only, beta 9)", "Sec. 3.4 (no prompt is the hard case)",
               "both/beta9/perfect", "cond_only/beta9/perfect", "=", tol=0.05),
    StudyClaim("guess", "diffusers' logspace(-1, 0, 13) guess scales behave like the official 0.825**(12-i) "
               "(edge F1 within 0.02, beta 9)", "diffusers vs official code", "guess_diffusers/beta9",
               "guess_official/beta9", "=", tol=0.02),
    StudyClaim("guess", "Guess-mode scales give better images than uniform scales with no prompt (FID, beta 9)",
               "official guess mode", "guess_official/beta9", "uniform/beta9", "<", key="fid"),
    StudyClaim("strength", "Condition fidelity rises with control strength: s = 0.5 above s = 0 (the base alone)",
               "diffusers' controlnet_conditioning_scale", "s0.5", "s0", ">"),
    StudyClaim("strength", "... and s = 1 above s = 0.5", "diffusers' controlnet_conditioning_scale",
               "s1", "s0.5", ">"),
    StudyClaim("strength", "Over-strong control (s = 2) costs image quality: FID above s = 1", "common advice",
               "s2", "s1", ">", key="fid"),
    StudyClaim("compose", "Plain sum keeps the condition: edge F1 within 0.05 of the outline ControlNet alone "
               "(matched scenes, no prompt)", "Fig. 6", "matched/none/sum", "matched/none/outline", "=", tol=0.05),
    StudyClaim("compose", "Plain sum needs no weighting: edge F1 above the 0.5/0.5 weighted sum (matched, no prompt)",
               "Sec. 3.4 (no extra weighting)", "matched/none/sum", "matched/none/weighted", ">"),
    StudyClaim("compose", "diffusers' MultiControlNetModel on the exported pair gives the same residuals "
               "(max |diff| <= 1e-5)", "diffusers", "multicontrolnet", "const:0", "=", key="max_abs_diff", tol=1e-5),
]


def study_value(r: dict, name: str, key: str) -> float:
    if name.startswith("const:"):
        return float(name.split(":", 1)[1])
    if name == "multicontrolnet":
        return float(r["multicontrolnet"][key])
    return float(r["results"][name][key])


def evaluate_study_claim(c: StudyClaim, preset: str, root: Path = RESULTS) -> dict:
    from .report import judge
    rs = load_study(c.study, preset, root)
    return judge(c, [study_value(r, c.a, c.key) for r in rs], [study_value(r, c.b, c.key) for r in rs])


def print_study_verdicts(study: str, preset: str, root: Path = RESULTS) -> list[dict]:
    from .report import print_claim
    out = []
    for c in (c for c in STUDY_CLAIMS if c.study == study):
        j = evaluate_study_claim(c, preset, root)
        print_claim(c, j)
        out.append({"claim": c, **j})
    return out


# ---------------------------------------------------------------------------------------------- figures
def study_table(results: list[dict], keys=("edge_f1", "color_ok", "bg_ok", "fid"), names=None) -> str:
    """A row per setting: mean ± std over the trained seeds of each metric."""
    names = names or list(results[0]["results"])
    w = 16
    lines = [f"{'setting (' + str(len(results)) + ' seeds)':<34}" + "".join(f"{k:>{w}}" for k in keys)]
    for n in names:
        cells = []
        for k in keys:
            xs = [r["results"][n][k] for r in results if k in r["results"][n]]
            cells.append((f"{np.mean(xs):.3f} ± {np.std(xs, ddof=1) if len(xs) > 1 else 0:.3f}" if xs else "-")
                         .rjust(w))
        lines.append(f"{n:<34}" + "".join(cells))
    return "\n".join(lines)


def plot_sweep(ax, results: list[dict], names: list[str], xs: list[float], key: str, label: str):
    """One line (mean over seeds, band = min-max) through the settings `names` placed at `xs`."""
    from .plots import plot_spread
    curves = [(xs, [r["results"][n][key] for n in names]) for r in results]
    return plot_spread(ax, curves, label)


def plot_tradeoff(ax, results: list[dict], names: list[str], label: str, x: str = "fid", y: str = "edge_f1",
                  marks: list | None = None):
    """A trade-off curve: the settings `names` (e.g. one mode at rising beta) as points (mean over seeds,
    bars = min-max) in the (x, y) plane, joined in order, the first and the rest labelled by `marks`."""
    xs = np.array([[r["results"][n][x] for n in names] for r in results])
    ys = np.array([[r["results"][n][y] for n in names] for r in results])
    line, = ax.plot(xs.mean(0), ys.mean(0), "o-", label=label, ms=4)
    ax.errorbar(xs.mean(0), ys.mean(0), xerr=[xs.mean(0) - xs.min(0), xs.max(0) - xs.mean(0)],
                yerr=[ys.mean(0) - ys.min(0), ys.max(0) - ys.mean(0)], fmt="none", color=line.get_color(), alpha=0.4)
    for m, px, py in zip(marks or [], xs.mean(0), ys.mean(0)):
        ax.annotate(str(m), (px, py), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(x); ax.set_ylabel(y)
    return line


def plot_cfg(results: list[dict], keys=("edge_f1", "color_ok", "fid")):
    """Fig. 5 as curves: each metric against the guidance scale, a line per mode, no prompt | perfect prompt."""
    import matplotlib.pyplot as plt
    betas = sorted({float(n.split("/beta")[1].split("/")[0]) for n in results[0]["results"]})
    fig, axes = plt.subplots(len(keys), 2, figsize=(12, 3.2 * len(keys)), squeeze=False)
    for j, p in enumerate(("none", "perfect")):
        for i, k in enumerate(keys):
            ax = axes[i, j]
            for m in sorted(MODES):
                plot_sweep(ax, results, [f"{m}/beta{b:g}/{p}" for b in betas], betas, k, m)
            ax.set_xlabel("guidance scale beta"); ax.set_title(f"{k}, prompt: {p}"); ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def show_study_grid(result: dict, names: list[str], root: Path = RESULTS, conditions=NETS, k: int = 8):
    """The held-out conditions, then the first k images of each setting (one trained seed, same noise)."""
    import matplotlib.pyplot as plt
    from .plots import show_images
    imgs = study_images(result, root)
    size = next(iter(imgs.values())).shape[-1]
    rows = [(f"condition: {c}", dataset("scenes", size=size, cond_factor=1, seed=VAL_SEED, condition=c)
             .batch(range(k))["cond"] * 2 - 1) for c in conditions]
    rows += [(n, imgs[n][:k]) for n in names]
    fig, axes = plt.subplots(len(rows), 1, figsize=(k * 0.8, 0.95 * len(rows)))
    for ax, (t, x) in zip(np.atleast_1d(axes), rows):
        show_images(ax, x, nrow=k, title=t)
    fig.tight_layout()
    return fig


def load_or_smoke(study: str, preset: str | None = None) -> tuple[list[dict], Path, str]:
    """A notebook's data: the committed results of a study, or in smoke mode (CNREF_SMOKE=1) the scenes
    ControlNets trained 4 steps on the smoke base and the study run on them, in a temporary folder."""
    import os
    import tempfile
    from .experiments import run
    preset = preset or os.environ.get("CNREF_PRESET", "cpu")
    root = RESULTS
    if os.environ.get("CNREF_SMOKE") == "1":
        root, preset = Path(tempfile.mkdtemp()), "smoke"
        run("scenes", "smoke", seeds=[0, 1], root=root)
        for seed in (0, 1):
            run_study(study, "smoke", seed, root)
    rs = load_study(study, preset, root)
    if not rs:
        raise FileNotFoundError(f"no results under {root / 'studies' / preset / study}: run "
                                f"`python -m cnref.studies run {study} --preset {preset}` first")
    return rs, root, preset


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m cnref.studies", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run", help="run a study (or all) for some trained seeds; finished seeds are skipped")
    r.add_argument("study", choices=[*STUDIES, "all"])
    r.add_argument("--preset", default="cpu", choices=["smoke", "cpu", "gpu"])
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    for study in (STUDIES if a.study == "all" else [a.study]):
        for seed in a.seeds:
            run_study(study, a.preset, seed)


if __name__ == "__main__":
    main()
