"""Inference-time studies on the trained scene ControlNets: sweeps of sampling settings over one
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
`python -m cnref study <study> --preset cpu --seeds 0 1 2` writes
experiments/studies/<preset>/<study>/seed<k>.json (+ .npz with the first images of each setting); a finished
seed is skipped, an unfinished one is redone.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel
from tqdm import tqdm

from ..checks import check_choice, fail
from ..control import compose, connection_scales
from ..data import VAL_SEED, dataset
from ..guidance import MODES
from ..interop import to_diffusers
from ..metrics import FID, scene_fidelity, summarize
from ..presets import preset as get_preset
from ..provenance import provenance
from ..sample import generate
from ..shipping import load_base
from .results import load_controlnet, load_results, study_path

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
def scenes_batches(base, n: int, factor: int = 1) -> dict[tuple[str, str], dict]:
    """(scene set, condition type) -> held-out batch: "same" = indices 0..n-1, "other" = n..2n-1; conditions at
    size * factor (the trained ControlNets' factor)."""
    out = {}
    for which, start in (("same", 0), ("other", n)):
        for cond in NETS:
            out[which, cond] = dataset("scenes", size=base.cfg.size, cond_factor=factor,
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


def trained_nets(base, preset: str, seed: int, root: Path | None = None) -> tuple[dict, dict]:
    """The `scenes` ControlNets of one seed, and where they came from."""
    rs = {r["variant"]: r for r in load_results("scenes", preset, root) if r["seed"] == seed}
    missing = [n for n in NETS if n not in rs]
    if missing:
        fail("seed", f"a seed with trained scenes ControlNets {list(NETS)} (python -m cnref run "
                     f"scenes --preset {preset} --seeds {seed})", f"{seed}: missing {missing}")
    return ({n: load_controlnet(rs[n], base, root) for n in NETS},
            {n: f"scenes/{preset}/{n}/seed{seed}.json" for n in NETS})


def run_study(study: str, preset: str, seed: int, root: Path | None = None, keep: int = 8, log=print) -> dict:
    path = study_path(study, preset, seed, root)
    eng = get_preset(preset, "scenes").train.protocol
    cfg = {"study": study, "n": eng.final_n, "ddim_steps": eng.val_steps, "sample_seed": seed + 1,
           "settings": [asdict(s) for s in settings(study, eng.val_beta)]}
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("config") == json.loads(json.dumps(cfg)):
            log(f"skip   {path.relative_to(path.parents[4])} (finished)")
            return old
    base = load_base(preset, "scenes")
    nets, sources = trained_nets(base, preset, seed, root)
    batches = scenes_batches(base, eng.final_n, nets[NETS[0]].cfg.factor)
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
