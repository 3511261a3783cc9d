"""Every training ablation, declared in one place: its variants (a function of the preset that returns named
variants of the preset's default run), the claims they test, stated before their runs (judged by the one rule
of cnref.lab.verdict), and the notebook that reads them. `python -m cnref run <ablation> --preset cpu --seeds 0 1 2`
runs one; `python -m cnref list` prints them all.

Why this module is long: each ablation's claims (about two hundred lines of data in all) sit on the ablation
they judge.
"""
from __future__ import annotations

from dataclasses import replace

from ..checks import check_choice
from ..measure.evaluate import QUALITY_SET
from ..measure.quality import KID_N
from ..mini.presets import ControlNetTrainConfig, preset as get_preset
from ..successors import design_config
from .declare import Ablation, Claim, Variant

ABLATIONS: dict[str, Ablation] = {}


def ablation(notebook: str, claims: dict[str, Claim]):
    """Declares the function below it an ablation (its name), with its claims (by id) and notebook, in `ABLATIONS`."""
    def declare(variants):
        ABLATIONS[variants.__name__] = Ablation(variants.__name__, variants, claims, notebook)
        return variants
    return declare


def default_run(preset: str) -> ControlNetTrainConfig:
    """The preset's default ControlNet run (Fig. 4's): every ablation's baseline."""
    return get_preset(preset).train


def _with(preset: str, name: str, design: str | None = None, **over) -> Variant:
    """The preset's default run with some fields changed (`control`, `protocol`: dicts of their fields); `design`:
    another design (cnref.successors.DESIGNS) with the default run's condition."""
    cfg = default_run(preset)
    control, proto = over.pop("control", {}), over.pop("protocol", {})
    c = design_config(design, like=cfg.control, **control) if design else replace(cfg.control, **control)
    return Variant(name, replace(cfg, control=c, protocol=replace(cfg.protocol, **proto), **over))


# Fig. 4 is judged by `suddenness` below. The row that judged it here, a score whose noise was the spread of the
# curve's own steps (the rise included), was written after these five seeds and ranks a steady ramp as a jump.
@ablation("05_sudden_convergence.py", {})
def sudden_convergence(preset: str) -> list[Variant]:
    """Fig. 4: one ControlNet, fidelity vs step; the convergence step is read off the curve."""
    return [Variant("controlnet", default_run(preset))]


# Fig. 4 retested: these definitions were written after seeds 0-4 of the default run existed (their curves shaped
# them), so they are judged on seeds 5-7 only, made after this declaration was committed; no seed is added whatever
# the verdicts. What each reading predicts, written before those runs: if the jump is an artefact of the IoU's
# threshold on a quantity that grows steadily, condition use (cnref.mini.use) rises from the first steps and its
# rise share sits near 0 (a ramp) or below, far from the IoU's (the third row refuted); if the model learns
# suddenly, condition use shows the IoU's steep window (the third row confirmed).
@ablation("05_sudden_convergence.py", {
    "iou_vs_ramp": Claim("Fig. 4 against a ramp: in every seed the IoU's steepest 100 steps hold more of its rise than a steady ramp "
          "with the validation noise measured at each checkpoint would (ramp test at 0.05; definition written after "
          "seeds 0-4, judged on seeds 5-7)", "Fig. 4", "controlnet", "ramp", ">", key="rise_share:iou", setting=None,
          headline=True),
    "loss_vs_ramp": Claim("... while the training loss's fall is no more concentrated than a steady ramp's with its own noise (no seed "
          "passes the ramp test)", "Fig. 4 (the loss shows no jump)", "controlnet", "ramp", "<", key="rise_share:loss",
          setting=None),
    "use_as_sudden": Claim("The jump is learning, not the IoU's threshold: condition use (Eq. 3's loss, blank minus true condition) "
          "rises as suddenly as the IoU (rise shares within 0.15, paired over seeds 5-7)", "Fig. 4",
          "controlnet", "controlnet", "=", key="rise_share:iou", key_b="rise_share:use_loss_gap", setting=None,
          tol=0.15),
})
def suddenness(preset: str) -> list[Variant]:
    """Fig. 4 judged against a ramp: the default run, each validation also scored under two more sampler seeds
    (its noise at a fixed checkpoint), condition use and the training loss's standard error recorded (every run
    records those now). Seeds 5-7 only (see the comment above)."""
    return [_with(preset, "controlnet", protocol={"noise_seeds": 2})]


@ablation("06_zero_init.py", {
    "beats_gaussian_0.02": Claim("Zero convs beat Gaussian-initialised convs (std 0.02)", "Fig. 8b (images)",
          "zero", "gaussian_0.02", ">", setting="held_out/*", headline=True),
    "beats_gaussian_0.2": Claim("Zero convs beat Gaussian-initialised convs (std 0.2)", "Fig. 8b (images)",
          "zero", "gaussian_0.2", ">", setting="held_out/*"),
    "earlier_than_gaussian_0.02": Claim("Zero convs converge earlier than Gaussian-initialised convs (std 0.02)",
          "Sec. 3.1 (no harmful noise at the start)", "zero", "gaussian_0.02", "<", key="convergence_step",
          setting=None),
    "gaussian_at_lite_level": Claim("Gaussian init drops to about lite's level (IoU within 0.05)", "Fig. 8b vs 8c",
          "gaussian_0.02", "lite:lite", "=", setting="held_out/*", tol=0.05),
})
def zero_init(preset: str) -> list[Variant]:
    """Fig. 8b: zero convolutions vs the same convs Gaussian-initialised (two stds)."""
    return [_with(preset, "zero"), _with(preset, "gaussian_0.02", control={"init": "gaussian", "gaussian_std": 0.02}),
            _with(preset, "gaussian_0.2", control={"init": "gaussian", "gaussian_std": 0.2})]


@ablation("07_lite.py", {
    "no_prompt": Claim("Lite fails with no prompt: ControlNet > lite", "Fig. 8c (images)",
          "controlnet", "lite", ">", setting="held_out/none", headline=True),
    "insufficient_prompt": Claim("Lite fails with an insufficient prompt: ControlNet > lite", "Fig. 8c (images)",
          "controlnet", "lite", ">", setting="held_out/insufficient"),
    "perfect_prompt": Claim("ControlNet > lite on condition fidelity (perfect prompt)", "Table 2: IoU 0.35 vs 0.32",
          "controlnet", "lite", ">", setting="held_out/perfect"),
    "lite_learns": Claim("With a perfect prompt lite still learns the condition: above the base alone (500 steps)",
          "Fig. 8c (images)", "lite", "bounds:base", ">", setting="held_out/perfect"),
    "lite_x4_learns": Claim("... and with 4x the steps (2000)", "Fig. 8c (images)",
          "lite_x4", "bounds:base", ">", setting="held_out/perfect"),
    "no_prompt_x4": Claim("Lite fails with no prompt even with 4x the steps: ControlNet (500 steps) > lite_x4 (2000)",
          "Fig. 8c (images)", "controlnet", "lite_x4", ">", setting="held_out/none"),
    "slower_not_unable": Claim("Lite is slower, not unable: ControlNet converges in fewer steps than lite_x4", "-",
          "controlnet", "lite_x4", "<", key="convergence_step", setting=None, headline=True),
})
def lite(preset: str) -> list[Variant]:
    """Fig. 8c: ControlNet vs ControlNet-lite (each trainable block -> one conv); four prompt settings."""
    base = default_run(preset)
    return [_with(preset, "controlnet"), _with(preset, "lite", control={"lite": True}),
            # lite did not converge within the default steps: the same run 4x longer says whether it is slow
            # or unable
            _with(preset, "lite_x4", control={"lite": True}, steps=base.steps * 4, val_every=base.val_every * 4)]


@ablation("08_dataset_size.py", {
    "1k_works": Claim("1k training images already work: above the base alone", "Fig. 10 (images)",
          "n_1000", "bounds:base", ">", setting="held_out/perfect", headline=True),
    "1k_reaches_unbounded": Claim("1k images reach the unbounded set's fidelity (within 0.05)", "Fig. 10: 1k < 50k < 3m",
          "n_1000", "n_unbounded", "=", setting="held_out/perfect", tol=0.05),
})
def dataset_size(preset: str) -> list[Variant]:
    """Fig. 10: 1k / 10k / 50k training images vs fresh procedural samples every step."""
    return [_with(preset, f"n_{n}", n_train=n) for n in (1000, 10_000, 50_000)] + [_with(preset, "n_unbounded")]


@ablation("09_prompt_dropout.py", {
    "helps_no_prompt": Claim("50% prompt dropout helps with no prompt", "Sec. 3.3 (motivation)",
          "dropout_0.5", "dropout_0", ">", setting="held_out/none", headline=True),
    "free_with_prompt": Claim("50% prompt dropout costs nothing with the perfect prompt (within 0.05)", "-",
          "dropout_0.5", "dropout_0", "=", setting="held_out/perfect", tol=0.05),
})
def prompt_dropout(preset: str) -> list[Variant]:
    """The paper's 50% empty prompts vs none (the official 1.0 code)."""
    return [_with(preset, "dropout_0.5"), _with(preset, "dropout_0", prompt_dropout=0.0)]


@ablation("10_mid_only.py", {
    "mid_learns": Claim("Middle-block-only ControlNet still learns the condition: above the base alone",
          "v1, 'Small-scale training'", "mid_only", "bounds:base", ">", setting="held_out/perfect"),
    "mid_faster": Claim("Middle-only is faster per training step (one ratio per fresh process, each interleaving "
          "the two: python -m cnref bench train --processes 5)", "v1: about 1.6x faster (tested here: faster at all)", "bench:train:cnref_mid",
          "bench:train:cnref", "<", key="median_step_s", setting=None, timing=True),
    "full_beats_mid": Claim("Full connections beat middle-only on condition fidelity", "-",
          "full", "mid_only", ">", setting="held_out/perfect"),
})
def mid_only(preset: str) -> list[Variant]:
    """Small-scale training: only the middle block connected."""
    return [_with(preset, "full"), _with(preset, "mid_only", control={"connections": "mid_only"})]


@ablation("11_batch_vs_steps.py", {
    "16_vs_64": Claim("The convergence step does not depend on batch size: 16 vs 64 (within 25 steps)",
          "docs/train.md", "batch_16", "batch_64", "=", key="convergence_step", setting=None, tol=25, headline=True),
    "256_vs_64": Claim("The convergence step does not depend on batch size: 256 vs 64 (within 25 steps; "
          "both 500 steps)", "docs/train.md", "batch_256_long", "batch_64", "=", key="convergence_step",
          setting=None, tol=25),
    "equal_compute": Claim("At equal compute, a larger batch beats more steps: 256 x 125 > 16 x 2000 (the large "
          "batch stops before its jump, which the advice excludes)", "docs/train.md", "batch_256", "batch_16", ">",
          setting="held_out/perfect"),
    # the advice's own premise, both runs trained past their jump (judged on runs made before this row was written)
    "equal_images": Claim("At equal images, both past the jump, a larger batch beats more steps: 64 x 500 > "
          "16 x 2000", "docs/train.md", "batch_64", "batch_16", ">", setting="held_out/perfect"),
    "1024_step": Claim("A batch above 256 brings little: 1024 converges at the step 256 does (within 25 steps; "
          "curves cut at 1024's last step)", "docs/train.md", "batch_1024", "batch_256_long", "=",
          key="convergence_step", setting=None, tol=25, same_steps=True),
    "1024_iou": Claim("A batch above 256 brings little: 1024's IoU at its last step within 0.05 of 256's at "
          "that step", "docs/train.md", "batch_1024", "batch_256_long", "=", setting=None, tol=0.05,
          same_steps=True),
})
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


@ablation("12_timestep_sampling.py", {
    "high_t": Claim("High-t-biased timesteps converge earlier than uniform",
          "ControlNet issue #628", "high_t", "uniform", "<", key="convergence_step", setting=None),
    "cubic": Claim("T2I-Adapter's cubic schedule (favours large t) converges earlier than uniform",
          "T2I-Adapter (training note)", "cubic", "uniform", "<", key="convergence_step", setting=None),
    "curriculum": Claim("#628's curriculum (t from [0.8T, T) at the start, uniform from step 250) converges "
          "earlier than uniform", "ControlNet issue #628", "curriculum", "uniform", "<", key="convergence_step",
          setting=None, headline=True),
})
def timestep_sampling(preset: str) -> list[Variant]:
    """Uniform t (the paper) against schedules that favour large t: a fixed bias for the whole run (`high_t`),
    T2I-Adapter's cubic schedule, and the curriculum ControlNet GitHub issue #628 proposes (large t at the
    start, decaying to uniform: cnref.paper.loss.curriculum_floor)."""
    return [_with(preset, "uniform"), _with(preset, "high_t", timesteps="high_t"),
            _with(preset, "cubic", timesteps="cubic"), _with(preset, "curriculum", timesteps="curriculum")]




@ablation("13_hint_encoders.py", {
    "paper_as_official": Claim("The paper's hint encoder (4x4, ReLU) works as well as the code's (within 0.05), "
          "conditions at the image's resolution", "text vs code", "paper", "official", "=", setting="held_out/perfect",
          tol=0.05),
    # stated before its runs: at 4x both encoders have two stride-2 stages, the path the two descriptions differ on
    "paper_as_official_f4": Claim("... and at 4x the image, where both encoders have their strided depth (within 0.05)",
          "text vs code", "paper_f4", "official_f4", "=", setting="held_out/perfect", tol=0.05),
})
def hint_encoders(preset: str) -> list[Variant]:
    """The official hint encoder (3x3, SiLU) vs the paper's text (4x4, ReLU), same factor: at the preset's (1x
    at cpu, where the official encoder has no stride-2 stage) and at 4x the image, where each has two."""
    return [_with(preset, "official"), _with(preset, "paper", control={"hint": "paper"}),
            _with(preset, "official_f4", control={"factor": 4}),
            _with(preset, "paper_f4", control={"hint": "paper", "factor": 4})]


@ablation("05_sudden_convergence.py", {
    # diagnostics of the gpu preset's failure to converge (notebook 05): what differs from the cpu preset
    "bf16_as_fp32": Claim("bf16 autocast converges at the step fp32 does (within 25 steps)",
          "- (diagnostic: the gpu preset trains in bf16)", "bf16", "fp32", "=", key="convergence_step",
          setting=None, tol=25),
})
def precision(preset: str) -> list[Variant]:
    """Not a paper claim: a diagnostic of the gpu preset, whose three seeds did not converge in 1500 steps
    under bf16 autocast, while the cpu preset (fp32) converges at step 275. One of them is the preset's default."""
    return [_with(preset, "fp32", precision="32-true"), _with(preset, "bf16", precision="bf16-mixed")]


@ablation("05_sudden_convergence.py", {
    "1_before_4": Claim("Conditions at the image's resolution converge earlier than at 4x (official hint encoder)",
          "- (diagnostic: SD's conditions are at 8x)", "factor_1", "factor_4", "<", key="convergence_step",
          setting=None),
    "1_before_8": Claim("... and earlier than at 8x (SD's factor, the gpu preset's)",
          "- (diagnostic: SD's conditions are at 8x)", "factor_1", "factor_8", "<", key="convergence_step",
          setting=None),
})
def cond_factor(preset: str) -> list[Variant]:
    """Not a paper claim: the other suspect of the gpu preset's failure to converge. It renders conditions
    at 8x the image (512 for 64, SD's ratio, the official 8x hint encoder); the cpu preset at 1x. On 2 cores a
    training step at 8x costs 12x one at 1x (8.2 s vs 0.68 s): factor_4 is the cpu preset's affordable probe."""
    return [_with(preset, f"factor_{f}", control={"factor": f}) for f in (1, 4, 8)]


LEARNING_RATES = {"lr_3e-5": 3e-5, "lr_1e-4": 1e-4, "lr_3e-4": 3e-4, "lr_1e-3": 1e-3}


@ablation("19_why_sudden.py", {
    # why the convergence is sudden: the learning rate (stated before its runs; every run instrumented)
    "3e-4_before_1e-4": Claim("A larger learning rate converges in fewer steps: 3e-4 before 1e-4", "-",
          "lr_3e-4", "lr_1e-4", "<", key="convergence_step", setting=None, headline=True),
    "1e-3_before_3e-4": Claim("... 1e-3 before 3e-4", "-", "lr_1e-3", "lr_3e-4", "<", key="convergence_step", setting=None),
    "1e-4_before_3e-5": Claim("... 1e-4 before 3e-5", "-", "lr_1e-4", "lr_3e-5", "<", key="convergence_step", setting=None),
    "step_x_lr_3e-4": Claim("Gate opening: step x lr is constant, 3e-4 vs 1e-4 (within 0.008, ~30% of 275 x 1e-4)",
          "this project's hypothesis (gate opening)", "lr_3e-4", "lr_1e-4", "=", key="step_x_lr", setting=None,
          tol=0.008),
    # written after its runs (the row is post hoc), for the prediction the docstring below stated before them
    "step_x_lr_1e-3": Claim("Gate opening: step x lr is constant, 1e-3 vs 1e-4 (within 0.008; the prediction stated before the runs "
          "put 1e-3's jump near step 28)", "this project's hypothesis (gate opening)", "lr_1e-3", "lr_1e-4", "=",
          key="step_x_lr", setting=None, tol=0.008),
    "step_x_lr_3e-5": Claim("Gate opening: step x lr is constant, 3e-5 vs 1e-4 (within 0.008)",
          "this project's hypothesis (gate opening)", "lr_3e-5", "lr_1e-4", "=", key="step_x_lr", setting=None,
          tol=0.008),
    "gate_ratio_3e-4": Claim("Gate opening: the residual / feature ratio at the jump is the same at 3e-4 and 1e-4 "
          "(log10 within 0.18, a factor 1.5)", "this project's hypothesis (gate opening)", "lr_3e-4", "lr_1e-4",
          "=", key="log_gate_at_step", setting=None, tol=0.18),
    # the learning rate x batch interaction, added because seed 0 of lr_3e-4 and lr_1e-3 showed the lr moves the
    # step (stated before its runs): does a 3x lr move the step at batch 16 as the gate predicts at batch 64?
    "batch_16_3e-4_before": Claim("At batch 16 too, 3e-4 converges before 1e-4", "-", "lr_3e-4_batch_16",
          "batch_vs_steps:batch_16", "<", key="convergence_step", setting=None),
    "step_x_lr_batch_16": Claim("Gate opening at batch 16: step x lr is constant, 3e-4 vs 1e-4 (within 0.013, ~30% of "
          "422 x 1e-4)", "this project's hypothesis (gate opening)", "lr_3e-4_batch_16", "batch_vs_steps:batch_16",
          "=", key="step_x_lr", setting=None, tol=0.013),
})
def learning_rate(preset: str) -> list[Variant]:
    """Why the convergence is sudden: the jump's step against the learning rate, every run instrumented
    (cnref.mini.probe: the gate's opening and a linear readout at each validation). With Adam a zero conv's
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


@ablation("19_why_sudden.py", {
    # why the convergence is sudden: the published explanations (stated before their runs)
    "crossnorm_earlier": Claim("ControlNeXt: cross normalisation (s = 0.35) converges earlier than zero convolutions",
          "ControlNeXt (zero convs slow the start)", "crossnorm", "zero", "<", key="convergence_step", setting=None, headline=True),
    "crossnorm_fidelity": Claim("... and keeps the condition fidelity (IoU within 0.05 of zero convs, perfect prompt)",
          "ControlNeXt", "crossnorm", "zero", "=", tol=0.05),
})
def injection(preset: str) -> list[Variant]:
    """Why the convergence is sudden, ControlNeXt's explanation: zero convolutions slow the start. The 13 outputs
    through zero convs (the default run) against ordinary 1x1 convs brought to the locked features' statistics
    and scaled by s = 0.35, ControlNeXt's value for sparse conditions such as Canny edges (cross normalisation,
    in the same 13 positions; the hint encoder's Z1 stays a zero conv in both)."""
    return [_with(preset, "zero"), _with(preset, "crossnorm", design="controlnet_crossnorm")]


@ablation("19_why_sudden.py", {
    "base_trainable_earlier": Claim("CtrLoRA: a pretrained condition embedder (the base's first layers, trained) converges "
          "earlier than a random one", "CtrLoRA (pretrained embedder)", "base_trainable", "random", "<",
          key="convergence_step", setting=None),
    "base_frozen_earlier": Claim("... and kept frozen, too", "CtrLoRA (pretrained embedder)", "base_frozen", "random", "<",
          key="convergence_step", setting=None),
})
def hint_embedder(preset: str) -> list[Variant]:
    """Why the convergence is sudden, CtrLoRA's explanation: a randomly initialised condition embedder. The
    official E (random init: the default run) against the locked base's own first layers as E (conv_in and the
    first ResNet block, reading the condition as a clean image at t = 0), trainable and frozen. Conditions at the
    sample's resolution, the only one those layers take."""
    embedder = "controlnet_base_embedder"
    return [_with(preset, "random"), _with(preset, "base_trainable", design=embedder, control={"factor": 1}),
            _with(preset, "base_frozen", design=embedder, control={"factor": 1, "trainable": False})]


# Why sudden, part two: experiments that separate the causes. Every claim below and its prediction were stated
# before the runs of its ablation; the baselines are the learning-rate study's instrumented runs at 1e-4 (the
# default recipe) and 1e-3 (lr x10 everywhere), seeds 0-2.
DEFAULT_LR, LR_X10 = "learning_rate:lr_1e-4", "learning_rate:lr_1e-3"


@ablation("19_why_sudden.py", {
    "zero_convs_x10_earlier": Claim("Which part must move: lr x10 on the zero convs alone converges before the default recipe",
          "this project's hypothesis (the gate is the bottleneck)", "zero_convs_x10", DEFAULT_LR, "<",
          key="convergence_step", setting=None),
    "zero_convs_x10_as_lr_x10": Claim("... and at the step lr x10 everywhere converges (within 25 steps)",
          "this project's hypothesis (the gate is the bottleneck)", "zero_convs_x10", LR_X10, "=",
          key="convergence_step", setting=None, tol=25),
    "copy_x10_as_default": Claim("lr x10 on the copy and hint encoder alone (the zero convs at 1x) converges at the default's step "
          "(within 25 steps)", "this project's hypothesis (the gate is the bottleneck)", "copy_x10", DEFAULT_LR, "=",
          key="convergence_step", setting=None, tol=25),
    "copy_x10_earlier": Claim("The rival: lr x10 on the copy and hint encoder alone converges before the default recipe",
          "rival hypothesis (the copy must learn first)", "copy_x10", DEFAULT_LR, "<", key="convergence_step",
          setting=None),
})
def which_part(preset: str) -> list[Variant]:
    """Why sudden: which trainable part must move a fixed distance. With Adam every part moves by about lr per
    step, so step x lr being constant cannot tell the zero convs (the gate) from the copy. Here one part at a time
    trains at 10x the lr. Predictions stated before the runs: if the gate is the bottleneck, zero convs x10
    converges like lr x10 everywhere (the learning-rate study's 1e-3, near step 46) and copy x10 like the default
    (near 231); if the copy must learn first, copy x10 comes early instead. Instrumented and validated every 10
    steps, as the 1e-3 runs."""
    fine = {"instrument": True, "val_every": 10}
    return [_with(preset, "zero_convs_x10", zero_conv_lr_scale=10.0, **fine),
            _with(preset, "copy_x10", copy_lr_scale=10.0, **fine)]


@ablation("19_why_sudden.py", {
    "z1_random_earlier": Claim("Which gate: with Z1 small random (std 0.02) and the 13 Z2 zero, the jump comes earlier than with both "
          "zero", "this project's hypothesis (a product of two zeros)", "z1_random", DEFAULT_LR, "<",
          key="convergence_step", setting=None),
    "z2_random_earlier": Claim("... and with the 13 Z2 small random and Z1 zero, earlier too",
          "this project's hypothesis (a product of two zeros)", "z2_random", DEFAULT_LR, "<",
          key="convergence_step", setting=None),
})
def which_gate(preset: str) -> list[Variant]:
    """Why sudden: the condition passes two zero-initialised convs in series (Z1 into the copy, the 13 Z2 out of
    it), so its effect on the output starts as a product of two zeros and its gradient at step 0 is zero for both.
    Opening one of them (std 0.02, the zero-init ablation's Gaussian) makes the effect first order in the other.
    Stated before the runs: that reading predicts both variants converge before both-zero. Against it, the
    zero-init ablation found both Gaussian converging later (363 vs 242): 13 random residuals disturb the locked
    decoder from step 0, which `z2_random` repeats and `z1_random` avoids."""
    return [_with(preset, "z1_random", instrument=True, control={"init": "gaussian_z1"}),
            _with(preset, "z2_random", instrument=True, control={"init": "gaussian_z2"})]


@ablation("19_why_sudden.py", {
    "decoder_2e-6_earlier": Claim("An unlocked decoder (lr 2e-6, the official advice for sd_locked=False) converges before the locked one",
          "official docs/train.md (sd_locked)", "decoder_2e-6", DEFAULT_LR, "<",
          key="convergence_step", setting=None),
    "decoder_1e-5_earlier": Claim("... and at decoder lr 1e-5", "official docs/train.md (sd_locked)", "decoder_1e-5", DEFAULT_LR, "<",
          key="convergence_step", setting=None),
})
def unlocked_decoder(preset: str) -> list[Variant]:
    """Why sudden: the locked decoder. The paper's large-scale option trains SD's decoder with the ControlNet
    (the official code's sd_locked=False, advised at lr 2e-6). Stated before the runs: if the delay lies in the
    locked decoder learning to use residuals it was never trained with, a decoder that can adapt shortens it."""
    return [_with(preset, name, instrument=True, unlock_decoder=True, decoder_lr=lr)
            for name, lr in (("decoder_2e-6", 2e-6), ("decoder_1e-5", 1e-5))]


@ablation("19_why_sudden.py", {
    "one_injection_before_hybrid": Claim("ControlNeXt as ControlNeXt (one injection, no zero conv, s = 0.35) converges before the 13-connection "
          "hybrid with a zero Z1", "ControlNeXt (zero convs slow the start)", "s0.35", "injection:crossnorm", "<",
          key="convergence_step", setting=None),
    "s1_before_s0.35": Claim("A larger s converges faster: s = 1 before s = 0.35", "ControlNeXt README (larger s, faster)",
          "s1", "s0.35", "<", key="convergence_step", setting=None),
    "s0.35_before_s0.1": Claim("... and s = 0.35 before s = 0.1", "ControlNeXt README (larger s, faster)",
          "s0.35", "s0.1", "<", key="convergence_step", setting=None),
})
def controlnext_scale(preset: str) -> list[Variant]:
    """ControlNeXt's cross normalisation tested as ControlNeXt does it: the `controlnext` design (one injection
    after the first down block, from a module that sees the condition from step 0, no zero conv), at s = 0.1,
    0.35 (its config's, for sparse conditions) and 1.0; validated every 10 steps, since it may reach the level
    early. Stated before the runs: the injection ablation's hybrid kept the zero Z1 and so the gate, which these
    runs remove; the official README says a larger s converges faster."""
    return [_with(preset, f"s{s:g}", design="controlnext", control={"scale": s}, val_every=10)
            for s in (0.1, 0.35, 1.0)]


@ablation("19_why_sudden.py", {
    "pretrained_before_random_layers": Claim("CtrLoRA controlled: the pretrained embedder (trained) converges before the same "
          "layers and input scaling randomly initialised (trained)", "CtrLoRA (pretrained embedder)",
          "hint_embedder:base_trainable", "base_random", "<", key="convergence_step", setting=None),
    "frozen_before_random_layers": Claim("... and kept frozen, too", "CtrLoRA (pretrained embedder)",
          "hint_embedder:base_frozen", "base_random", "<", key="convergence_step", setting=None),
    "layers_before_official_e": Claim("The rival: the layers and input scaling alone (randomly initialised) converge "
          "before the official random E", "rival hypothesis (the embedder's architecture, not its weights)",
          "base_random", "hint_embedder:random", "<", key="convergence_step", setting=None),
})
def ctrlora_controlled(preset: str) -> list[Variant]:
    """Why sudden, CtrLoRA's explanation controlled: `hint_embedder`'s pretrained embedder differs from the official
    E in its weights, and also in its layers (conv_in and a ResNet block with GroupNorm and the t = 0 embedding,
    against a stack of small convs) and its input scaling (2 c - 1). `base_random` keeps those layers and that
    scaling, randomly initialised and trained. Stated before its runs: if the pretraining is what helps, the
    pretrained embedder (trained, and frozen) converges before `base_random`; if the layers are, `base_random`
    converges before the official E."""
    return [_with(preset, "base_random", design="controlnet_base_embedder", control={"factor": 1, "pretrained": False})]


@ablation("19_why_sudden.py", {
    "f8_3e-4_before_1e-4": Claim("At SD's condition factor 8 (the gpu preset's), lr 3e-4 converges before 1e-4",
          "this project (a gpu recipe that converges)", "f8_lr3e-4", "cond_factor:factor_8", "<",
          key="convergence_step", setting=None),
    "f8_1e-3_before_3e-4": Claim("... and 1e-3 before 3e-4", "this project (a gpu recipe that converges)", "f8_lr1e-3",
          "f8_lr3e-4", "<", key="convergence_step", setting=None),
})
def factor8_lr(preset: str) -> list[Variant]:
    """The gpu recipe, chosen at the cpu scale: conditions at 8x the image (the gpu preset's factor, SD's), at lr
    3e-4 and 1e-3, against `cond_factor`'s factor_8 at 1e-4 (step 750 of 1000 for its one seed). The learning-rate
    study fits step ~ lr^-0.78, which puts these jumps near steps 320 and 125; each run stops at its plateau (the
    successors' rule) within the default 500 steps. Stated before the runs: the gpu preset's lr is then chosen by
    `cnref.lab.convergence.best_lr` over these two (plateau levels within LR_TOL of the better, then the earlier
    convergence, seeds 0-2 averaged), and its steps as twice the chosen lr's mean convergence step at factor 8."""
    return [_with(preset, name, control={"factor": 8}, lr=lr, **PLATEAU) for name, lr in (("f8_lr3e-4", 3e-4),
                                                                                       ("f8_lr1e-3", 1e-3))]


# the learning-rate study's lr_1e-4 (the default recipe, instrumented): its seeds 0-2 cross the level at steps
# 224, 244 and 237, mean 235; `before_jump` stops the same runs at 0.5x and 0.8x of that mean
BEFORE_JUMP = (125, 200)


@ablation("19_why_sudden.py", {})
def before_jump(preset: str) -> list[Variant]:
    """Why sudden: is the copy ready before the images follow? The default recipe, instrumented as the learning-rate
    study's lr_1e-4, stopped before its jump (at the cpu preset steps 125 and 200: 0.5x and 0.8x of lr_1e-4's mean
    crossing, 235; other presets scale them with their budget) with its weights kept, for the `gain` study to
    sample with every residual amplified. The lr is constant and every draw a function of (seed, step), so each run
    is the first steps of lr_1e-4's run of its seed; its claims are the `gain` study's."""
    steps = default_run(preset).steps
    return [_with(preset, f"steps{k}", instrument=True, steps=max(1, round(k * steps / 500))) for k in BEFORE_JUMP]


@ablation("21_alternatives.py", {
    # ControlNet's successors on the same base, data and recipe (stated before their runs; X = 0.05 IoU)
    "t2i_fidelity": Claim("T2I-Adapter stays within 0.05 IoU of ControlNet's condition fidelity (perfect prompt)",
          "diffusers' docs: T2I-Adapter 'slightly worse' than ControlNet", "t2i_adapter", "controlnet", "=", tol=0.05, headline=True),
    "t2i_cubic_fidelity": Claim("... and so with the cubic timesteps its paper trains with", "T2I-Adapter (cubic sampling)",
          "t2i_adapter_cubic", "controlnet", "=", tol=0.05),
    "xs_fidelity": Claim("ControlNet-XS matches ControlNet's condition fidelity (within 0.05 IoU, perfect prompt) "
          "with a fifth of its trainable parameters", "ControlNet-XS", "controlnet_xs", "controlnet", "=", tol=0.05),
    "controlnext_earlier": Claim("ControlNeXt converges in fewer steps than ControlNet", "ControlNeXt: 'converges faster'",
          "controlnext", "controlnet", "<", key="convergence_step", setting=None),
    # stated before the successors' runs and their fresh-process bench (one process had measured 0.72x and 0.91x)
    "xs_quality": Claim("ControlNet-XS gives better image quality than ControlNet (KID on (image, condition) pairs, "
          "256 held-out conditions, perfect prompt)", "ControlNet-XS: better FID", "controlnet_xs", "controlnet", "<",
          key="kid", setting=QUALITY_SET),
    "t2i_cost": Claim("T2I-Adapter costs less per generated image than ControlNet: it runs once per generation "
          "(20 DDIM steps, CFG 9; one ratio per fresh process: python -m cnref bench successors --processes 5)",
          "T2I-Adapter: runs once", "bench:successors:t2i_adapter", "bench:successors:controlnet", "<",
          key="median_sample_s", setting=None, timing=True),
    "xs_speed": Claim("ControlNet-XS is faster per generated image than ControlNet (same bench)",
          "ControlNet-XS: 'about twice as fast' (tested here: faster at all)", "bench:successors:controlnet_xs", "bench:successors:controlnet",
          "<", key="median_sample_s", setting=None, timing=True),
})
def successors(preset: str) -> list[Variant]:
    """ControlNet and its successors on the same locked base, data, recipe and budget (cnref.successors): the
    default run, T2I-Adapter (with our uniform timesteps, and with the cubic schedule its paper trains with),
    ControlNet-XS (control encoder at a quarter of the base's widths) and ControlNeXt (s = 0.35, its config's).
    Each final evaluation adds a KID row on KID_N held-out conditions (the smoke preset: its final_n), so the
    ControlNet here is its own run, not the default run's."""
    p = default_run(preset).protocol
    kid = {"kid_n": p.final_n if preset == "smoke" else KID_N}
    w = lambda name, **over: _with(preset, name, protocol=kid, **over)
    return [w("controlnet"), w("t2i_adapter", design="t2i_adapter"),
            w("t2i_adapter_cubic", design="t2i_adapter", timesteps="cubic"),
            w("controlnet_xs", design="controlnet_xs"),
            w("controlnext", design="controlnext")]


# The successors on fair terms, stated before any of their runs: each design at its own learning rate, trained to a
# plateau and judged there. The lr: seed 0 of each design at 3e-4 and 1e-3 (successors_lr), with its 1e-4 run
# above, chosen by cnref.lab.convergence.best_lr (plateau levels within LR_TOL of the best, then the earliest
# convergence step); the plateau: cnref.mini.engine.plateaued with PLATEAU, read after the fact on the 1e-4 runs.
LR_SWEEP = (3e-4, 1e-3)
LR_TOL = 0.02
PLATEAU = {"plateau_tol": 0.02, "plateau_window": 100}
SWEPT = ("controlnet", "t2i_adapter", "controlnet_xs", "controlnext")
# best_lr's choice for each design, written in once seed 0 of every lr has run (tests/test_claims.py recomputes it
# from the committed runs); successors_fair runs the designs it holds
FAIR_LR: dict[str, float] = {"controlnet": 1e-3, "t2i_adapter": 1e-3, "controlnet_xs": 1e-3, "controlnext": 1e-4}
EQUAL_TRAIN_S = 300.0        # equal compute: fidelity after this many seconds of training (validation excluded)


@ablation("21_alternatives.py", {})
def successors_lr(preset: str) -> list[Variant]:
    """Each design of `successors` at the two other learning rates of the sweep (seed 0 only; the 1e-4 point is the
    `successors` run), stopped at its plateau within the default budget; they choose FAIR_LR."""
    return [_with(preset, f"{d}_lr{lr:g}", design=d, lr=lr, **PLATEAU) for d in SWEPT for lr in LR_SWEEP]


@ablation("21_alternatives.py", {
    "t2i_fidelity_fair": Claim("At each one's own lr, trained to its plateau: T2I-Adapter within 0.05 IoU of "
          "ControlNet's condition fidelity (perfect prompt)", "diffusers' docs: T2I-Adapter 'slightly worse' than "
          "ControlNet", "t2i_adapter", "controlnet", "=", tol=0.05),
    "xs_fidelity_fair": Claim("At each one's own lr, trained to its plateau: ControlNet-XS within 0.05 IoU of "
          "ControlNet (perfect prompt)", "ControlNet-XS: matches ControlNet", "controlnet_xs", "controlnet", "=", tol=0.05),
    "controlnext_earlier_fair": Claim("At each one's own lr: ControlNeXt reaches the convergence level in fewer "
          "steps than ControlNet", "ControlNeXt: 'converges faster'", "controlnext", "controlnet", "<",
          key="convergence_step", setting=None),
    "controlnext_half_rise_fair": Claim("... and closes half of its own rise (from its own first validation, above "
          "the base's: no zero init) in fewer steps than ControlNet closes half of its", "ControlNeXt: 'converges "
          "faster'", "controlnext", "controlnet", "<", key="half_rise_step", setting=None),
    "controlnext_official": Claim("ControlNeXt's official recipe (the base's attention output projections trained "
          "too, the module at 10x their lr) ends at a higher condition fidelity than the module alone",
          "ControlNeXt: training part of the base matters", "controlnext_official", "controlnext", ">"),
    "xs_quality_fair": Claim("At each one's own lr, at the plateau: ControlNet-XS gives better image quality than "
          "ControlNet (KID on (image, condition) pairs, perfect prompt)", "ControlNet-XS: better FID", "controlnet_xs",
          "controlnet", "<", key="kid", setting=QUALITY_SET),
    "t2i_equal_compute": Claim(f"At equal training compute ({EQUAL_TRAIN_S:g} s of training on this CPU): "
          "T2I-Adapter within 0.05 IoU of ControlNet (validation IoU)", "T2I-Adapter: cheaper", "t2i_adapter",
          "controlnet", "=", key=f"iou_at_train_s:{EQUAL_TRAIN_S:g}", setting=None, tol=0.05),
    "xs_equal_compute": Claim(f"At equal training compute ({EQUAL_TRAIN_S:g} s): ControlNet-XS within 0.05 IoU of "
          "ControlNet (validation IoU)", "ControlNet-XS: efficient", "controlnet_xs", "controlnet", "=",
          key=f"iou_at_train_s:{EQUAL_TRAIN_S:g}", setting=None, tol=0.05),
    "controlnext_equal_compute": Claim(f"At equal training compute ({EQUAL_TRAIN_S:g} s): ControlNeXt above "
          "ControlNet (validation IoU)", "ControlNeXt: 'converges faster'", "controlnext", "controlnet", ">",
          key=f"iou_at_train_s:{EQUAL_TRAIN_S:g}", setting=None),
})
def successors_fair(preset: str) -> list[Variant]:
    """ControlNet and its successors, each at its own lr (FAIR_LR), trained until the plateau rule stops it (at
    most twice the default budget), validated every 5 steps up to step 100 (early rises and head starts are read
    from the curve) and every 25 after; the final evaluation adds KID. `controlnext_official` is ControlNeXt at its
    lr with the base's attention output projections trained at a tenth of it (its official recipe)."""
    cfg = default_run(preset)
    fair = dict(steps=2 * cfg.steps, val_early_every=5, val_early_until=100, **PLATEAU,
                protocol={"kid_n": cfg.protocol.final_n if preset == "smoke" else KID_N})
    out = [_with(preset, d, design=d, lr=FAIR_LR[d], **fair) for d in SWEPT if d in FAIR_LR]
    if "controlnext" in FAIR_LR:
        lr = FAIR_LR["controlnext"]
        out.append(_with(preset, "controlnext_official", design="controlnext", lr=lr, base_to_out_lr=lr / 10, **fair))
    return out


# which claim of `successors` (one lr, 500 steps) each claim of `successors_fair` retests on fair terms; the others
# are new (equal compute, the official recipe, the half rise) or do not depend on training (the costs)
RETESTS = {"t2i_fidelity_fair": "t2i_fidelity", "xs_fidelity_fair": "xs_fidelity",
           "controlnext_earlier_fair": "controlnext_earlier", "xs_quality_fair": "xs_quality"}


@ablation("14_scenes.py", {
    "outline": Claim("A ControlNet learns scene outlines: edge F1 above the scenes base alone (perfect prompt)",
          "Fig. 7 (Canny, HED)", "outline", "bounds:base_scenes", ">", key="edge_f1"),
    "segmentation": Claim("A ControlNet learns segmentation maps: edge F1 above the scenes base alone (perfect prompt)",
          "Fig. 7 (segmentation)", "segmentation", "bounds:base_scenes", ">", key="edge_f1"),
})
def scenes(preset: str) -> list[Variant]:
    """ControlNets on two condition types of the same procedural scenes (on the scenes base),
    whose weights the guidance and composition studies load."""
    return [_with(preset, c, data="scenes", condition=c) for c in ("outline", "segmentation")]


SUITE = ["zero_init", "lite", "prompt_dropout", "hint_encoders", "timestep_sampling", "mid_only",
         "batch_vs_steps", "dataset_size"]     # the paper's training ablations, cheapest claims first
SUITE_SEEDS = (0, 1, 2)                        # the suite's seeds: 3 each


def variants(ablation: str, preset: str, names: list[str] | None = None) -> list[Variant]:
    """An ablation's variants at a preset, or the named ones (each checked)."""
    check_choice("ablation", ablation, set(ABLATIONS))
    vs = ABLATIONS[ablation].variants(preset)
    for name in names or []:
        check_choice("variants", name, {v.name for v in vs})
    return [v for v in vs if not names or v.name in names]
