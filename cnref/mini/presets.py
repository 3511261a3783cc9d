"""Every preset, defined once: smoke (seconds, CI), cpu (2 cores, minutes), gpu (one GPU).

A preset is four frozen configs: the base model's architecture (`BaseConfig`), how the base is
pretrained (`BaseTrainConfig`), how a ControlNet is trained (`ControlNetTrainConfig`) and how every run
is measured (`EvalProtocol`). Scenes variants (`preset(name, "scenes")`) change only what the richer
data needs. Any field can be overridden from the command line with `--set key=value` (dotted keys reach
nested configs: `--set control.factor=4 protocol.val_n=64`); `override` applies such pairs, and
`--set control.design=t2i_adapter` switches the run to another design (cnref.successors.DESIGNS), keeping
the condition's factor and channels.

The condition resolution lives in one place: the design's `factor` (condition size / sample size,
SD: 512 / 64 = 8). The base never sees conditions, so it has no factor of its own.
"""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from dataclasses import dataclass, replace

from ..checks import check_choice, check_positive, check_probability, fail
from ..paper.controlnet import ControlNetConfig
from ..paper.loss import TIMESTEP_KINDS
from ..successors import DesignConfig, design_config
from .data import DATASETS

NAMES = ("smoke", "cpu", "gpu")


@dataclass(frozen=True)
class BaseConfig:
    """The mini Stable Diffusion's architecture and noise schedule (cnref.mini.base)."""
    size: int = 32                                   # pixel-space sample size (SD: 64x64 latents)
    channels: tuple = (32, 32, 64, 64)               # SD1.5: (320, 640, 1280, 1280)
    cross_attention: tuple = (False, False, True, True)  # attention per level (SD: first three + middle)
    heads: int = 4
    norm_groups: int = 8
    text_width: int = 32                             # SD1.5: 768
    text_layers: int = 2
    max_tokens: int = 16                             # SD: 77
    offset_noise: float = 0.1                        # fixes dull colours (README, "the base model")
    data: str = "fill50k"                            # what it was trained on (and its vocabulary)
    # SD's schedule
    beta_start: float = 0.00085
    beta_end: float = 0.012
    num_train_timesteps: int = 1000


@dataclass(frozen=True)
class BaseTrainConfig:
    """Pretraining of the base (UNet + text encoder jointly) with Eq. 3."""
    preset: str = "cpu"
    steps: int = 2000
    batch_size: int = 64
    lr: float = 5e-4
    warmup: int = 100
    min_lr_ratio: float = 0.1
    prompt_dropout: float = 0.1      # empty prompts, so that the base supports classifier-free guidance
    ema_decay: float = 0.999
    seed: int = 0
    ckpt_every: int = 100
    data: str = "fill50k"            # "fill50k" | "scenes" (their own base)


@dataclass(frozen=True)
class EvalProtocol:
    """How a run is measured: validation sampling during training and the final evaluation."""
    val_n: int = 32                  # held-out conditions per validation
    val_steps: int = 10              # DDIM steps (validation and final evaluation)
    val_beta: float = 3.0            # CFG scale
    val_prompt: str = "perfect"
    val_keep: int = 8                # images per validation kept for the sample grid
    final_n: int = 64                # final evaluation: samples per prompt setting
    kid_n: int = 0                   # final evaluation: held-out conditions, perfect prompt, scored by KID (0: none)
    noise_seeds: int = 0             # validation: this many more sampler seeds, whose fidelity measures its noise


@dataclass(frozen=True)
class ControlNetTrainConfig:
    """One training run of a ControlNet (or of another design: `control`), Eq. 3 with the base locked."""
    preset: str = "cpu"
    steps: int = 500
    batch_size: int = 64
    accumulate: int = 1              # micro-batches per optimiser step (the official advice: a larger real batch)
    lr: float = 1e-4
    zero_conv_lr_scale: float = 1.0  # the zero convs (Z1 and the 13 Z2) train at lr x this
    copy_lr_scale: float = 1.0       # the rest of the control (its copy, conv_in, time embedding, hint encoder
                                     # up to Z1) at lr x this: which part must move for the jump
    prompt_dropout: float = 0.5      # the paper's 50%
    timesteps: str = "uniform"       # cnref.paper.loss.TIMESTEP_KINDS
    n_train: int | None = None       # training-set size; None = fresh procedural samples every step
    data: str = "fill50k"            # "fill50k" | "scenes" (on the scenes base)
    train_folder: str | None = None  # train on a fill50k folder (source/, target/, prompt.json) instead of the
                                     # procedural set; validation stays on the procedural held-out set
    condition: str = "outline"       # scenes: outline | canny | segmentation | depth | scribble
    control: DesignConfig = ControlNetConfig()      # the design that trains, with its condition's factor
    unlock_decoder: bool = False
    decoder_lr: float = 2e-6         # the official advice for sd_locked=False
    base_to_out_lr: float | None = None   # ControlNeXt's official recipe: the base's attention output projections
                                          # train too, at this lr (its script: the module at 10x it); None: locked
    gradient_checkpointing: bool = False   # recompute activations in backward: less memory, more time
    precision: str = "32-true"       # Lightning's; the gpu preset trains (and validates) in "bf16-mixed"
    instrument: bool = False         # record cnref.mini.probe's gate and readout at each validation
    seed: int = 0
    val_every: int = 25
    val_early_every: int = 0         # validate this often before step val_early_until too (0: not); a head start
    val_early_until: int = 100       # or an early rise is read from the curve, not from one validation at step 25
    plateau_tol: float | None = None # stop at a plateau (`plateaued`, at most `steps`): the mean fidelity of the last
    plateau_window: int = 100        # window steps' validations within plateau_tol of the window's before; None: run all steps
    protocol: EvalProtocol = EvalProtocol()
    ckpt_every: int = 50

    @property
    def cond_factor(self) -> int:
        """Condition resolution / sample resolution: the design's factor, its one home."""
        return self.control.factor


PRECISIONS = {"32-true", "bf16-mixed"}       # Lightning's precision settings a run may name


def check_run(cfg: ControlNetTrainConfig) -> ControlNetTrainConfig:
    """A ControlNet run's settings, checked before anything is trained or written."""
    for name in ("steps", "batch_size", "accumulate", "val_every", "ckpt_every"):
        check_positive(name, getattr(cfg, name), integer=True)
    for name in ("lr", "zero_conv_lr_scale", "copy_lr_scale"):
        check_positive(name, getattr(cfg, name))
    check_positive("val_early_every", cfg.val_early_every, integer=True, allow_zero=True)
    check_positive("plateau_window", cfg.plateau_window, integer=True)
    for name in ("base_to_out_lr", "plateau_tol"):
        if getattr(cfg, name) is not None:
            check_positive(name, getattr(cfg, name))
    if cfg.base_to_out_lr is not None and cfg.unlock_decoder:
        fail("base_to_out_lr", "None when unlock_decoder is set (the decoder's to_out weights would train in two "
             "groups)", cfg.base_to_out_lr)
    check_probability("prompt_dropout", cfg.prompt_dropout)
    check_choice("timesteps", cfg.timesteps, TIMESTEP_KINDS)
    check_choice("precision", cfg.precision, PRECISIONS)
    check_choice("data", cfg.data, DATASETS)
    check_choice("preset", cfg.preset, NAMES)
    if cfg.n_train is not None:
        check_positive("n_train", cfg.n_train, integer=True)
    if cfg.train_folder is not None:
        if cfg.data != "fill50k" or cfg.n_train is not None:
            fail("train_folder", "a fill50k run (data=fill50k) without n_train", f"data={cfg.data}, n_train={cfg.n_train}")
        if not (Path(cfg.train_folder) / "prompt.json").is_file():
            fail("train_folder", "a fill50k folder holding prompt.json, source/ and target/", cfg.train_folder)
    for name in ("val_n", "val_steps", "val_keep", "final_n"):
        check_positive(f"protocol.{name}", getattr(cfg.protocol, name), integer=True)
    check_positive("protocol.noise_seeds", cfg.protocol.noise_seeds, integer=True, allow_zero=True)
    return cfg


@dataclass(frozen=True)
class Preset:
    name: str
    base: BaseConfig
    base_train: BaseTrainConfig
    train: ControlNetTrainConfig


_PRESETS = {
    "smoke": Preset("smoke",
                    BaseConfig(size=16, channels=(8, 8, 16, 16), heads=2, norm_groups=4, text_width=16, text_layers=1),
                    BaseTrainConfig(preset="smoke", steps=300, batch_size=32),
                    ControlNetTrainConfig(preset="smoke", steps=4, batch_size=4, val_every=2, ckpt_every=2,
                                          protocol=EvalProtocol(val_n=4, val_steps=2, val_keep=4, final_n=4))),
    # cpu: the base ~25 min on 2 cores; a ControlNet run ~10 min
    "cpu": Preset("cpu", BaseConfig(), BaseTrainConfig(preset="cpu"), ControlNetTrainConfig(preset="cpu")),
    # gpu: 64x64 samples, SD's 8x conditions (512x512) and the official 8x hint encoder; the base sees 1M images
    "gpu": Preset("gpu",
                  BaseConfig(size=64, channels=(32, 64, 128, 128), cross_attention=(False, True, True, True),
                             text_width=64, text_layers=4),
                  BaseTrainConfig(preset="gpu", steps=4000, batch_size=256, ckpt_every=250),
                  ControlNetTrainConfig(preset="gpu", steps=1500, batch_size=64, val_every=50,
                                        control=ControlNetConfig(factor=8), precision="bf16-mixed",
                                        protocol=EvalProtocol(val_n=64, val_steps=20))),
}


def preset(name: str, data: str = "fill50k") -> Preset:
    """A preset for a dataset. Scenes (1-3 shapes, colours bound to shapes) take 1.5x the base's steps, and
    their prompts run to 15 words, more than Fill50K's 16 tokens hold with <bos>/<eos>: 24 tokens."""
    check_choice("preset", name, NAMES)
    check_choice("data", data, DATASETS)
    p = _PRESETS[name]
    if data == "fill50k":
        return p
    return replace(p, base=replace(p.base, data=data, max_tokens=24),
                   base_train=replace(p.base_train, data=data, steps=p.base_train.steps * 3 // 2),
                   train=replace(p.train, data=data))


def _parse(value: str):
    """A --set value: a Python literal (3e-4, 1000, True, None, (1, 2)), else the string itself."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def override(cfg, pairs) -> object:
    """cfg with each "key=value" of `pairs` applied; dotted keys reach nested dataclasses. An unknown key
    or a value of the wrong type is a one-line error naming it."""
    for pair in pairs:
        if "=" not in pair:
            fail("--set", "key=value", repr(pair))
        key, raw = pair.split("=", 1)
        cfg = _set(cfg, key.split("."), _parse(raw), key)
    return cfg


def _set(cfg, path: list[str], value, full: str):
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    name = path[0]
    if name not in fields:
        fail("--set", f"a field of {type(cfg).__name__} ({', '.join(fields)})", repr(full))
    old = getattr(cfg, name)
    if name == "control" and path[1:] == ["design"]:      # another design, the same condition
        return replace(cfg, **{name: design_config(value, like=old)})
    if len(path) > 1:
        if not dataclasses.is_dataclass(old):
            fail("--set", f"{name} to be a nested config", repr(full))
        return replace(cfg, **{name: _set(old, path[1:], value, full)})
    if dataclasses.is_dataclass(old):
        fail("--set", f"a field inside {name} (e.g. {name}.<field>=...)", repr(full))
    if old is not None and value is not None:
        if isinstance(old, bool) or isinstance(value, bool):
            ok = isinstance(old, bool) and isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float) if isinstance(old, float) else type(old))
        if not ok:
            fail(f"--set {full}", f"a {type(old).__name__}", repr(value))
        if isinstance(old, float):
            value = float(value)
    return replace(cfg, **{name: value})


def config_dict(cfg: ControlNetTrainConfig) -> dict:
    """A run's config as its result file stores it: the evaluation protocol's fields at the top level (the
    layout every committed result has), the design's config nested under `control` with its name."""
    d = dataclasses.asdict(cfg)
    proto = d.pop("protocol")
    d["control"] = {"design": cfg.control.design, **d["control"]}
    out = {}
    for k, v in d.items():
        if k == "ckpt_every":
            out.update(proto)
        out[k] = v
    return out


# Keys that older result files hold and the current config does not: `cond_factor` was the run's condition
# factor beside controlnet.factor, which a run-time check kept equal to it (None: the base's, which was the
# preset ControlNet's factor).
LEGACY_KEYS = ("cond_factor",)
# Older result files name the design's config `controlnet`: one config for the ControlNet and every design it
# served, told apart by `kind`, with the options other papers lend the ControlNet (`injection`, `hint` "base").
# Its fields' defaults then:
LEGACY_CONTROLNET = {"hint": "official", "factor": 1, "cond_channels": 3, "connections": "full", "init": "zero",
                     "gaussian_std": 0.02, "lite": False, "injection": "zero", "crossnorm_scale": 0.35,
                     "hint_trainable": True, "kind": "controlnet", "xs_size_ratio": 0.25}


def legacy_control(old: dict) -> DesignConfig:
    """The design config that an older result's `controlnet` dict describes."""
    d = {**LEGACY_CONTROLNET, **old}
    cond = {"factor": d["factor"], "cond_channels": d["cond_channels"]}
    if d["kind"] != "controlnet":
        extra = {"controlnet_xs": {"size_ratio": d["xs_size_ratio"]}, "controlnext": {"scale": d["crossnorm_scale"]}}
        return design_config(d["kind"], **cond, **extra.get(d["kind"], {}))
    if d["injection"] == "crossnorm":
        return design_config("controlnet_crossnorm", **cond, scale=d["crossnorm_scale"])
    if d["hint"] == "base":
        return design_config("controlnet_base_embedder", **cond, trainable=d["hint_trainable"])
    return ControlNetConfig(**{k: d[k] for k in ("hint", "factor", "cond_channels", "connections", "init",
                                                 "gaussian_std", "lite")})


def config_from_dict(d: dict) -> ControlNetTrainConfig:
    """The inverse of `config_dict` (missing keys take their defaults, legacy keys are read as they were meant)."""
    proto_names = {f.name for f in dataclasses.fields(EvalProtocol)}
    top = {k: v for k, v in d.items() if k not in proto_names and k not in LEGACY_KEYS and k != "controlnet"}
    if "control" in d:
        c = dict(d["control"])
        top["control"] = design_config(c.pop("design"), **c)
    else:
        top["control"] = legacy_control(d.get("controlnet", {}))
    return ControlNetTrainConfig(**top, protocol=EvalProtocol(**{k: v for k, v in d.items() if k in proto_names}))
