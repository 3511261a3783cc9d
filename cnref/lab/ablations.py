"""Every training ablation, declared as data: a function of the preset that returns named variants of the
preset's default ControlNet run. `python -m cnref run <ablation> --preset cpu --seeds 0 1 2` runs one;
`python -m cnref list` prints them all.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..checks import check_choice
from ..presets import ControlNetTrainConfig, preset as get_preset
from ..quality import KID_N


def default_run(preset: str) -> ControlNetTrainConfig:
    """The preset's default ControlNet run (Fig. 4's): every ablation's baseline."""
    return get_preset(preset).train


@dataclass(frozen=True)
class Variant:
    name: str
    cfg: ControlNetTrainConfig


def sudden_convergence(preset: str) -> list[Variant]:
    """Fig. 4: one ControlNet, fidelity vs step; the convergence step is read off the curve."""
    return [Variant("controlnet", default_run(preset))]


def _with(preset: str, name: str, **over) -> Variant:
    """The preset's default run with some fields changed (`controlnet`, `protocol`: dicts of their fields)."""
    cfg = default_run(preset)
    cn, proto = over.pop("controlnet", {}), over.pop("protocol", {})
    return Variant(name, replace(cfg, controlnet=replace(cfg.controlnet, **cn),
                                 protocol=replace(cfg.protocol, **proto), **over))


def zero_init(preset: str) -> list[Variant]:
    """Fig. 8b: zero convolutions vs the same convs Gaussian-initialised (two stds)."""
    return [_with(preset, "zero"), _with(preset, "gaussian_0.02", controlnet={"init": "gaussian", "gaussian_std": 0.02}),
            _with(preset, "gaussian_0.2", controlnet={"init": "gaussian", "gaussian_std": 0.2})]


def lite(preset: str) -> list[Variant]:
    """Fig. 8c: ControlNet vs ControlNet-lite (each trainable block -> one conv); four prompt settings."""
    base = default_run(preset)
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
    """The official training notes (docs/train.md in lllyasviel/ControlNet): the convergence step vs batch size, and equal compute (batch x steps) comparisons."""
    base = default_run(preset)
    return [_with(preset, "batch_16", batch_size=base.batch_size // 4, steps=base.steps * 4, val_every=base.val_every * 4),
            _with(preset, "batch_64"),
            _with(preset, "batch_256", accumulate=4, steps=base.steps // 4, val_every=max(1, base.val_every // 4)),
            # 125 steps end before batch 64's convergence step: only as many steps (4x the compute) can show
            # whether the jump comes at the same step
            _with(preset, "batch_256_long", accumulate=4),
            # the notes: a logical batch above 256 brings little. Half the steps at 16x64 (8x batch 64's compute)
            # against batch_256_long's first half: the lr is constant, so those steps are what a run of that
            # length would have taken
            _with(preset, "batch_1024", accumulate=16, steps=base.steps // 2)]


def timestep_sampling(preset: str) -> list[Variant]:
    """Uniform t (the paper) against schedules that favour large t: a fixed bias for the whole run (`high_t`),
    T2I-Adapter's cubic schedule, and the curriculum ControlNet GitHub issue #628 proposes (large t at the
    start, decaying to uniform: cnref.loss.curriculum_floor)."""
    return [_with(preset, "uniform"), _with(preset, "high_t", timesteps="high_t"),
            _with(preset, "cubic", timesteps="cubic"), _with(preset, "curriculum", timesteps="curriculum")]


def scenes(preset: str) -> list[Variant]:
    """ControlNets on two condition types of the same procedural scenes (on the scenes base),
    whose weights the guidance and composition studies load."""
    return [_with(preset, c, data="scenes", condition=c) for c in ("outline", "segmentation")]


def hint_encoders(preset: str) -> list[Variant]:
    """The official hint encoder (3x3, SiLU) vs the paper's text (4x4, ReLU), same factor: at the preset's (1x
    at cpu, where the official encoder has no stride-2 stage) and at 4x the image, where each has two."""
    return [_with(preset, "official"), _with(preset, "paper", controlnet={"hint": "paper"}),
            _with(preset, "official_f4", controlnet={"factor": 4}),
            _with(preset, "paper_f4", controlnet={"hint": "paper", "factor": 4})]


def precision(preset: str) -> list[Variant]:
    """Not a paper claim: a diagnostic of the gpu preset, whose three seeds did not converge in 1500 steps
    under bf16 autocast, while the cpu preset (fp32) converges at step 275. One of them is the preset's default."""
    return [_with(preset, "fp32", precision="32-true"), _with(preset, "bf16", precision="bf16-mixed")]


def cond_factor(preset: str) -> list[Variant]:
    """Not a paper claim: the other suspect of the gpu preset's failure to converge. It renders conditions
    at 8x the image (512 for 64, SD's ratio, the official 8x hint encoder); the cpu preset at 1x. On 2 cores a
    training step at 8x costs 12x one at 1x (8.2 s vs 0.68 s): factor_4 is the cpu preset's affordable probe."""
    return [_with(preset, f"factor_{f}", controlnet={"factor": f}) for f in (1, 4, 8)]


LEARNING_RATES = {"lr_3e-5": 3e-5, "lr_1e-4": 1e-4, "lr_3e-4": 3e-4, "lr_1e-3": 1e-3}


def learning_rate(preset: str) -> list[Variant]:
    """Why the convergence is sudden: the jump's step against the learning rate, every run instrumented
    (cnref.probe: the gate's opening and a linear readout at each validation). With Adam a zero conv's
    weights move by about lr per step whatever the gradient's size, so if the jump is "the gate opening",
    step x lr is about constant (the claims in cnref.lab.claims, stated before the runs). 1e-4 is the
    default recipe's lr, here rerun with the instruments. 3e-5 gets 3x the steps (that prediction puts its
    jump near step 900); 1e-3's predicted jump (~step 28) needs validations every 10 steps. 1e-5 would need
    ~2,750 steps (about an hour a run on 2 cores) and is left out of the study's 4 h budget.

    `lr_3e-4_batch_16` asks whether the learning rate and the batch act separately: 3e-4 at batch 16 against
    `batch_vs_steps`' batch 16 at 1e-4 (which converges near step 422). It runs the default steps (a quarter of
    the images), past every prediction on the table (the gate's: ~141; seed 0's batch-64 ratio, 103 / 222: ~196)
    and past 1e-4's own step, validated as often as the default run."""
    base = default_run(preset)
    long = {"steps": base.steps * 3}
    fine = {"val_every": max(1, base.val_every * 2 // 5)}
    return [_with(preset, name, lr=lr, instrument=True, **(long if lr < 1e-4 else fine if lr >= 1e-3 else {}))
            for name, lr in LEARNING_RATES.items()] + \
        [_with(preset, "lr_3e-4_batch_16", lr=3e-4, instrument=True, batch_size=max(1, base.batch_size // 4))]


def injection(preset: str) -> list[Variant]:
    """Why the convergence is sudden, ControlNeXt's explanation: zero convolutions slow the start. The 13 outputs
    through zero convs (the default run) against ordinary 1x1 convs brought to the locked features' statistics
    and scaled by s = 0.35, ControlNeXt's value for sparse conditions such as Canny edges (cross normalisation,
    in the same 13 positions; the hint encoder's Z1 stays a zero conv in both)."""
    return [_with(preset, "zero"), _with(preset, "crossnorm", controlnet={"injection": "crossnorm"})]


def hint_embedder(preset: str) -> list[Variant]:
    """Why the convergence is sudden, CtrLoRA's explanation: a randomly initialised condition embedder. The
    official E (random init: the default run) against the locked base's own first layers as E (conv_in and the
    first ResNet block, reading the condition as a clean image at t = 0), trainable and frozen. Conditions at the
    sample's resolution, the only one those layers take."""
    return [_with(preset, "random"), _with(preset, "base_trainable", controlnet={"hint": "base", "factor": 1}),
            _with(preset, "base_frozen", controlnet={"hint": "base", "factor": 1, "hint_trainable": False})]


def successors(preset: str) -> list[Variant]:
    """ControlNet and its successors on the same locked base, data, recipe and budget (cnref.controls): the
    default run, T2I-Adapter (with our uniform timesteps, and with the cubic schedule its paper trains with),
    ControlNet-XS (control encoder at a quarter of the base's widths) and ControlNeXt (s = crossnorm_scale).
    Each final evaluation adds a KID row on KID_N held-out conditions (the smoke preset: its final_n), so the
    ControlNet here is its own run, not the default run's."""
    p = default_run(preset).protocol
    kid = {"kid_n": p.final_n if preset == "smoke" else KID_N}
    w = lambda name, **over: _with(preset, name, protocol=kid, **over)
    return [w("controlnet"), w("t2i_adapter", controlnet={"kind": "t2i_adapter"}),
            w("t2i_adapter_cubic", controlnet={"kind": "t2i_adapter"}, timesteps="cubic"),
            w("controlnet_xs", controlnet={"kind": "controlnet_xs"}),
            w("controlnext", controlnet={"kind": "controlnext"})]


ABLATIONS = {"sudden_convergence": sudden_convergence, "zero_init": zero_init, "lite": lite,
             "dataset_size": dataset_size, "prompt_dropout": prompt_dropout, "mid_only": mid_only,
             "batch_vs_steps": batch_vs_steps, "timestep_sampling": timestep_sampling, "hint_encoders": hint_encoders,
             "scenes": scenes, "precision": precision, "cond_factor": cond_factor, "learning_rate": learning_rate,
             "injection": injection, "hint_embedder": hint_embedder, "successors": successors}
SUITE = ["zero_init", "lite", "prompt_dropout", "hint_encoders", "timestep_sampling", "mid_only",
         "batch_vs_steps", "dataset_size"]     # the paper's training ablations, cheapest claims first
SUITE_SEEDS = (0, 1, 2)                        # the suite's seeds: 3 each


def variants(ablation: str, preset: str, names: list[str] | None = None) -> list[Variant]:
    """An ablation's variants at a preset, or the named ones (each checked)."""
    check_choice("ablation", ablation, set(ABLATIONS))
    vs = ABLATIONS[ablation](preset)
    for name in names or []:
        check_choice("variants", name, {v.name for v in vs})
    return [v for v in vs if not names or v.name in names]
