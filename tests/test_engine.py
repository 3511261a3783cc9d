"""The training engine's small pieces, against their formulas: the EMA of the shipped base, the base's learning-rate
schedule, the optimiser groups of an unlocked decoder and the checkpoint's completeness check."""
import math
from dataclasses import replace

import pytest
import torch

from cnref.mini.ema import EMA
from cnref.mini.engine import warmup_cosine


def test_ema_follows_its_formula_with_the_warm_up_decay():
    """theta_ema <- d theta_ema + (1 - d) theta, with d = min(decay, (1 + k) / (10 + k)) at step k, by hand."""
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, decay=0.5)
    want = [p.detach().clone() for p in model.parameters()]
    for k in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        d = min(0.5, (1 + k) / (10 + k))           # 0.1, 0.18.., 0.25, 0.3..: the warm-up, below 0.5
        ema.update(model, k)
        want = [d * w + (1 - d) * p.detach() for w, p in zip(want, model.parameters())]
        for s, w in zip(ema.shadow.parameters(), want):
            torch.testing.assert_close(s, w)
    assert not any(p.requires_grad for p in ema.shadow.parameters())


def test_warmup_cosine_at_its_landmarks():
    """Linear warm-up to 1 over `warmup` steps, then a half cosine from 1 to min_ratio at `total`."""
    f = warmup_cosine(10, 110, 0.1)
    assert f(0) == pytest.approx(0.1) and f(4) == pytest.approx(0.5) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)                       # the cosine's start
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5)           # its midpoint: cos(pi / 2) = 0
    assert f(35) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)   # held at the floor after `total`


@pytest.fixture(scope="module")
def smoke_training():
    from cnref.mini.presets import preset
    from cnref.mini.train import ControlNetTraining
    return lambda **over: ControlNetTraining(replace(preset("smoke").train, **over))


def test_an_unlocked_decoder_trains_in_its_own_group_at_its_own_lr(smoke_training):
    """sd_locked=False: the UNet's decoder (up blocks and output layers) joins the optimiser at decoder_lr, the
    control at lr; locked, the optimiser holds the control alone."""
    m = smoke_training(unlock_decoder=True, decoder_lr=2e-6, lr=1e-4)
    groups = m.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == [1e-4, 2e-6]
    decoder = {id(p) for p in m.base.unet.up_blocks.parameters()}
    assert decoder and decoder <= {id(p) for p in groups[1]["params"]}
    assert all(p.requires_grad for p in groups[1]["params"])
    locked = smoke_training()
    g = locked.configure_optimizers().param_groups
    assert len(g) == 1 and {id(p) for p in g[0]["params"]} == {id(p) for p in locked.controlnet.trainable()}


def test_a_checkpoint_missing_a_trainable_tensor_is_refused(smoke_training):
    from cnref.mini.train import check_trained_state
    m = smoke_training()
    state = {n: p for n, p in m.named_parameters() if p.requires_grad}
    check_trained_state(m, state)                              # complete: accepted
    name = next(iter(state))
    with pytest.raises(ValueError, match=f"1 missing, e.g. {name}"):
        check_trained_state(m, {k: v for k, v in state.items() if k != name})


def test_controlnexts_official_recipe_trains_the_bases_attention_output_projections(smoke_training):
    """base_to_out_lr: every base parameter named *to_out* joins the optimiser at that lr, nothing else of the base;
    the module stays at lr (train_controlnext.py: the module at 10x the base's lr)."""
    from cnref.successors import design_config
    m = smoke_training(control=design_config("controlnext"), lr=1e-4, base_to_out_lr=1e-5)
    groups = m.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == [1e-4, 1e-5]
    to_out = {id(p) for n, p in m.base.unet.named_parameters() if "to_out" in n}
    assert to_out and {id(p) for p in groups[1]["params"]} == to_out
    trainable_base = {n for n, p in m.base.named_parameters() if p.requires_grad}
    assert trainable_base and all("to_out" in n for n in trainable_base)
    from cnref.mini.presets import check_run, preset
    with pytest.raises(ValueError, match="`base_to_out_lr`: expected None when unlock_decoder is set"):
        check_run(replace(preset("smoke").train, unlock_decoder=True, base_to_out_lr=1e-5))


def test_validation_steps_dense_early_then_every_val_every():
    from cnref.mini.presets import preset
    from cnref.mini.engine import validates_at
    cfg = replace(preset("smoke").train, val_every=25, val_early_every=10, val_early_until=100)
    assert [s for s in range(160) if validates_at(cfg, s)] == [0, 10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90, 100,
                                                                125, 150]
    assert [s for s in range(60) if validates_at(replace(cfg, val_early_every=0), s)] == [0, 25, 50]


def test_the_plateau_rule_compares_the_last_windows_mean_with_the_one_before():
    """Windows (s - w, s] and (s - 2w, s - w]; read from s = 2w on; stop when their means differ by less than tol."""
    from cnref.mini.engine import plateaued
    h = lambda ys: [{"step": 10 * k, "iou": y} for k, y in enumerate(ys)]
    # w = 20: at s = 40 the windows are steps {30, 40} and {10, 20}
    assert not plateaued(h([0.0, 0.5, 0.5]), "iou", 20, 0.02)                      # s = 20 < 2w: too early
    assert plateaued(h([0.0, 0.50, 0.52, 0.51, 0.52]), "iou", 20, 0.02)            # |0.515 - 0.51| < 0.02
    assert not plateaued(h([0.0, 0.40, 0.50, 0.50, 0.52]), "iou", 20, 0.02)       # |0.51 - 0.45| = 0.06
    assert not plateaued(h([0.9, 0.50, 0.52, 0.55, 0.52]), "iou", 20, 0.02)       # step 0 is outside both
    assert plateaued(h([0.9, 0.50, 0.52, 0.52, 0.52]), "iou", 20, 0.02)
    assert not plateaued(h([0.0, 0.50, 0.52, 0.52, 0.52]), "iou", 20, 0.005)      # |0.52 - 0.51| = 0.01 > tol
