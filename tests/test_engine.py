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
