"""Inference-time studies on trained ControlNets (the scene ControlNets, but for `gain`): sweeps of sampling
settings over one held-out set, repeated for every trained seed.

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

- `quality`: the settings whose image quality a claim compares (from the studies above, named
  "<study>/<setting>"), at 256 held-out scenes per seed (a different set for each seed), measured with KID on
  (image, condition) pairs (`cnref.measure.quality`); with calibration rows that need no sampling: the targets, the
  targets paired with another scene's outline (right images, wrong place), blurred targets and noise.

- `gain` (`cnref.lab.gain`, on fill50k): the `before_jump` ControlNets sampled with every residual multiplied by
  1, 2 and 4, on their own validation: is the copy ready before the images follow?

Every sample set of the scene studies is measured with metrics.scene_fidelity (against each scene it may follow) and FID (KID in
`quality`).
`python -m cnref study <study> --preset cpu --seeds 0 1 2` writes
experiments/studies/<preset>/<study>/seed<k>.json (+ .npz with the first images of each setting); a finished
seed is skipped, an unfinished one is redone. Each study is declared in `STUDIES` with the claims its results
are judged by and the notebook that reads them.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel
from tqdm import tqdm

from ..checks import check_choice, fail
from ..paper.control import compose, connection_scales
from ..mini.data import VAL_SEED, dataset
from ..paper.guidance import MODES
from ..mini.metrics import scene_fidelity, summarize
from ..measure.gain import GAINS
from ..measure.quality import FID, KID, KID_N
from ..mini.presets import preset as get_preset
from ..provenance import provenance
from ..mini.data import to_uint8
from ..mini.sample import generate
from ..mini.shipping import load_base
from .ablations import BEFORE_JUMP
from .declare import Study, StudyClaim
from .gain import GAIN_CLAIMS, row_name, run_gain
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
    if study == "gain":        # the strength here is the residual gain, applied to the before-jump checkpoints
        return [Setting(row_name(f"steps{k}", g), strength=g) for k in BEFORE_JUMP for g in GAINS]
    if study == "quality":
        return [replace(x, name=f"{st}/{x.name}") for st, names in QUALITY_SETTINGS.items()
                for x in settings(st, beta) if x.name in names]
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


# Each study, its claims (stated before its runs; judged per trained seed by cnref.lab.verdict) and its notebook.
# Two identities are tests, not claims (they cannot fail): with no prompt and the control in both branches CFG
# changes nothing (beta 9 = beta 1), and diffusers' MultiControlNetModel gives our composition's residuals
# (tests/test_studies.py).
STUDIES = {s.name: s for s in (
    Study("cfg", "Fig. 5: CFG modes x guidance scale", notebook="15_cfg.py", claims={
        "cond_only_strong": StudyClaim("No prompt: control in the conditional branch only makes guidance strong (edge F1 above "
                   "both branches, beta 9)", "Fig. 5c", "cond_only/beta9/none", "both/beta9/none", ">"),
        "weighted_literal": StudyClaim("CFG resolution weighting, literal, keeps the condition (edge F1 within 0.05 of "
                   "conditional-only, beta 9, no prompt)", "Fig. 5d (literal reading)", "cond_only_weighted/beta9/none",
                   "cond_only/beta9/none", "=", tol=0.05),
        "weighted_normalized": StudyClaim("CFG resolution weighting, normalised, keeps the condition (edge F1 within 0.05 of "
                   "conditional-only, beta 9, no prompt)", "Fig. 5d (normalised reading)",
                   "cond_only_normalized/beta9/none", "cond_only/beta9/none", "=", tol=0.05),
        "perfect_prompt_either": StudyClaim("With the perfect prompt, where the control goes matters little (edge F1 within 0.05, "
                   "both vs conditional-only, beta 9)", "Sec. 3.4 (no prompt is the hard case)",
                   "both/beta9/perfect", "cond_only/beta9/perfect", "=", tol=0.05),
    }),
    Study("guess", "guess-mode scales", notebook="16_guess.py", claims={
        "diffusers_as_official": StudyClaim("diffusers' logspace(-1, 0, 13) guess scales behave like the official 0.825**(12-i) "
                   "(edge F1 within 0.02, beta 9)", "diffusers vs official code", "guess_diffusers/beta9",
                   "guess_official/beta9", "=", tol=0.02),
    }),
    Study("strength", "control strength", notebook="17_strength.py", claims={
        "s0.5_above_s0": StudyClaim("Condition fidelity rises with control strength: s = 0.5 above s = 0 (the base alone)",
                   "diffusers' controlnet_conditioning_scale", "s0.5", "s0", ">"),
        "s1_above_s0.5": StudyClaim("... and s = 1 above s = 0.5", "diffusers' controlnet_conditioning_scale",
                   "s1", "s0.5", ">"),
    }),
    Study("quality", "image quality (KID) where a claim rests on it, with calibration rows",
          notebook="20_image_quality.py", claims={
        # image quality, where a claim rests on it: KID of (image, condition) pairs at 256 scenes per seed, its
        # calibration first (the rows above judged condition fidelity; these are FID's former rows)
        "sees_placement": StudyClaim("KID sees placement: the targets paired with another scene's outline score worse than "
                   "with their own", "calibration", "calibration/moved", "calibration/ground_truth", ">", key="kid"),
        "base_worse": StudyClaim("... and the base alone (s = 0) scores worse than the targets", "calibration",
                   "strength/s0", "calibration/ground_truth", ">", key="kid"),
        "cond_only_costs": StudyClaim("No prompt: control in the conditional branch only costs image quality (KID above both "
                   "branches, beta 9)", "Fig. 5c", "cfg/cond_only/beta9/none", "cfg/both/beta9/none", ">", key="kid"),
        "weighted_literal": StudyClaim("CFG resolution weighting, literal (w_i = 64/h_i >= 1), improves image quality over "
                   "conditional-only (KID, beta 9, no prompt)", "Fig. 5d (literal reading)",
                   "cfg/cond_only_weighted/beta9/none", "cfg/cond_only/beta9/none", "<", key="kid"),
        "weighted_normalized": StudyClaim("CFG resolution weighting, normalised (w_i = h_min/h_i <= 1: it reduces the guidance), "
                   "improves image quality over conditional-only (KID, beta 9, no prompt)", "Fig. 5d (normalised reading)",
                   "cfg/cond_only_normalized/beta9/none", "cfg/cond_only/beta9/none", "<", key="kid"),
        "guess_better": StudyClaim("Guess-mode scales give better images than uniform scales with no prompt (KID, beta 9)",
                   "official guess mode", "guess/guess_official/beta9", "guess/uniform/beta9", "<", key="kid"),
        "s2_costs": StudyClaim("Over-strong control (s = 2) costs image quality: KID above s = 1", "common advice",
                   "strength/s2", "strength/s1", ">", key="kid"),
    }),
    Study("gain", "residual gain before the jump", notebook="19_why_sudden.py", claims=GAIN_CLAIMS),
    Study("compose", "Fig. 6: multi-ControlNet composition", notebook="18_compose.py", claims={
        "sum_keeps": StudyClaim("Plain sum keeps the condition: edge F1 within 0.05 of the outline ControlNet alone "
                   "(matched scenes, no prompt)", "Fig. 6", "matched/none/sum", "matched/none/outline", "=", tol=0.05),
        "sum_beats_weighted": StudyClaim("Plain sum needs no weighting: edge F1 above the 0.5/0.5 weighted sum (matched, no prompt)",
                   "Sec. 3.4 (no extra weighting)", "matched/none/sum", "matched/none/weighted", ">", headline=True),
    }),
)}
# the settings the image-quality claims compare, and s = 0 (the base alone) as a calibration row
QUALITY_SETTINGS = {"cfg": ("both/beta9/none", "cond_only/beta9/none", "cond_only_weighted/beta9/none",
                            "cond_only_normalized/beta9/none"),
                    "guess": ("guess_official/beta9", "uniform/beta9"), "strength": ("s0", "s1", "s2")}
CALIBRATION = ("calibration/ground_truth", "calibration/moved", "calibration/blurred", "calibration/noise")
QUALITY_START = 10_000                  # seed k's held-out scenes: indices QUALITY_START + k * KID_N onwards


@torch.no_grad()
def scenes_batches(base, n: int, factor: int = 1, start: int = 0) -> dict[tuple[str, str], dict]:
    """(scene set, condition type) -> held-out batch: "same" = indices start..start+n-1, "other" = the next n;
    conditions at size * factor (the trained ControlNets' factor)."""
    out = {}
    for which, first in (("same", start), ("other", start + n)):
        for cond in NETS:
            out[which, cond] = dataset("scenes", size=base.cfg.size, cond_factor=factor,
                                       seed=VAL_SEED, condition=cond).batch(range(first, first + n))
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


def measure(images: torch.Tensor, batches: dict, s: Setting, quality: FID | KID) -> dict:
    """scene_fidelity against the held-out scenes (and, when a ControlNet saw other scenes, against those:
    keys other_*), and FID, or KID on the images paired with the held-out scenes' outlines."""
    same = batches["same", "outline"]
    q = {"fid": quality(images)} if isinstance(quality, FID) else quality(images, same["cond"])
    out = {**summarize(scene_fidelity(images, same)), **q}
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
    multi = MultiControlNetModel([nets[n].diffusers_model(base.unet) for n in NETS]).eval()
    down, mid = multi(z_t, t, c_t, conds, list(weights), return_dict=False)
    diff = max(float((a - b_).abs().max()) for a, b_ in zip(ours.residuals, (*down, mid)))
    scale = max(float(r.abs().max()) for r in ours.residuals)
    return {"weights": list(weights), "max_abs_diff": diff, "max_abs_residual": scale}


def blur(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """A separable Gaussian blur (5 taps), edges replicated."""
    x = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = images.shape[1]
    h = torch.nn.functional.pad(images.float(), (2, 2, 2, 2), mode="replicate")
    h = torch.nn.functional.conv2d(h, k.view(1, 1, 1, 5).repeat(c, 1, 1, 1), groups=c)
    return torch.nn.functional.conv2d(h, k.view(1, 1, 5, 1).repeat(c, 1, 1, 1), groups=c)


def calibration(batches: dict, kid: KID, seed: int) -> dict:
    """The quality study's rows that need no sampling, on its held-out scenes: the targets with their outlines
    (the best a model can do), the targets with another scene's outline (right images in the wrong place: a
    metric that sees placement must score them clearly worse), blurred targets, and uniform noise."""
    same = batches["same", "outline"]
    other = {k: v.roll(1, 0) if torch.is_tensor(v) else v[-1:] + v[:-1] for k, v in same.items()}  # scene i-1's
    x = same["image"].float()
    g = torch.Generator().manual_seed(seed)
    rows = dict(zip(CALIBRATION, [(x, same), (x, other), (blur(x), same), (torch.rand(x.shape, generator=g) * 2 - 1, same)]))
    # fidelity and KID against the scene whose outline each image is paired with
    return {name: {**summarize(scene_fidelity(im, b)), **kid(im, b["cond"])} for name, (im, b) in rows.items()}


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
    if study == "gain":       # fill50k ControlNets of its own ablation, not the scene nets
        return run_gain(preset, seed, root, log)
    path = study_path(study, preset, seed, root)
    eng = get_preset(preset, "scenes").train.protocol
    n = KID_N if study == "quality" and preset != "smoke" else eng.final_n
    cfg = {"study": study, "n": n, "ddim_steps": eng.val_steps, "sample_seed": seed + 1,
           "settings": [asdict(s) for s in settings(study, eng.val_beta)]}
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("config") == json.loads(json.dumps(cfg)):
            log(f"skip   {path.relative_to(path.parents[4])} (finished)")
            return old
    base = load_base(preset, "scenes")
    nets, sources = trained_nets(base, preset, seed, root)
    batches = scenes_batches(base, n, nets[NETS[0]].cfg.factor, QUALITY_START + seed * n if study == "quality" else 0)
    quality = KID(base) if study == "quality" else FID(base)
    prov = provenance(seed=seed)
    t0 = time.perf_counter()
    rows, images = {}, {}
    for s in tqdm(settings(study, eng.val_beta), desc=f"{study} seed {seed}"):
        x = sample_setting(base, nets, batches, s, eng.val_steps, seed + 1)
        rows[s.name] = measure(x, batches, s, quality)
        images[s.name] = to_uint8(x[:keep]).numpy()
    out = {"study": study, "preset": preset, "seed": seed, "provenance": prov, "config": cfg,
           "controlnets": sources, "results": rows}
    if study == "quality":
        rows.update(calibration(batches, quality, seed))
    if study == "compose":
        out["multicontrolnet"] = multicontrolnet_check(base, nets, batches, seed=seed)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path.with_suffix(".npz"), **{k.replace("/", "__"): v for k, v in images.items()})
    path.write_text(json.dumps(out, indent=1))
    log(f"done   {study} seed {seed}")
    return out
