"""Connection scales against the paper's and the codes' formulas; composition is a plain sum."""
import pytest
import torch
from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

from cnref.paper.control import SCALE_KINDS, Control, compose, connection_scales, controlled_unet
from cnref.paper.controlnet import ControlNet

from conftest import inputs, randomize_zero_convs, refuses, tiny_unet

SD_SIZES = [64] * 3 + [32] * 3 + [16] * 3 + [8] * 3 + [8]   # SD1.5's 13 connections at 64x64 latents


def test_guess_mode_official():
    w = connection_scales("guess_official", strength=1.0)
    assert torch.allclose(w.double(), torch.tensor([0.825 ** (12 - i) for i in range(13)], dtype=torch.float64))
    assert w[-1] == 1.0 and abs(w[0] - 0.825 ** 12) < 1e-7


def test_guess_mode_diffusers_is_logspace_and_differs_from_official():
    w = connection_scales("guess_diffusers", strength=2.0)
    assert torch.allclose(w, 2.0 * torch.tensor([10 ** (-1 + i / 12) for i in range(13)]))
    # 0.825 vs 10 ** (-1/12) = 0.8254: close, not equal (largest gap 9e-4, at the middle connections)
    gap = (w / 2 - connection_scales("guess_official")).abs().max().item()
    assert 5e-4 < gap < 1e-3


def test_resolution_weighting_is_64_over_h():
    w = connection_scales("resolution", sizes=SD_SIZES)
    assert w.tolist() == [64 / h for h in SD_SIZES] == [1] * 3 + [2] * 3 + [4] * 3 + [8] * 4


def test_normalised_resolution_weighting_is_at_most_one():
    w = connection_scales("resolution_normalized", sizes=SD_SIZES)
    assert w.tolist() == pytest.approx([8 / h for h in SD_SIZES]) and w.max() == 1.0


def test_resolution_weighting_generalises_to_hmax():
    sizes = [32] * 3 + [16] * 3 + [8] * 3 + [4] * 4
    assert connection_scales("resolution", strength=0.5, sizes=sizes).tolist() == [0.5 * 32 / h for h in sizes]


def test_uniform_strength():
    assert connection_scales("uniform", strength=1.5).tolist() == [1.5] * 13


def _two_controls(unet, seed=0):
    nets = []
    for k in range(2):
        net = ControlNet(unet)
        randomize_zero_convs(net, seed=seed + k)
        nets.append(net.eval())
    return nets


def test_multi_control_is_the_sum_of_single_controls():
    unet = tiny_unet("cnref")
    nets = _two_controls(unet)
    z_t, t, c_t, cond = inputs(unet)
    cond2 = torch.rand_like(cond)
    with torch.no_grad():
        c1, c2 = nets[0](z_t, t, c_t, cond), nets[1](z_t, t, c_t, cond2)
        both = compose([c1, c2])
        for r, a, b in zip(both.residuals, c1.residuals, c2.residuals):
            assert torch.equal(r, a + b)
        weighted = compose([c1, c2], weights=[0.3, 0.7])
        assert torch.allclose(weighted.mid, 0.3 * c1.mid + 0.7 * c2.mid)
        # and diffusers' MultiControlNetModel on the exported models sums the same residuals
        multi = MultiControlNetModel([n.diffusers_model(unet) for n in nets])
        down, mid = multi(z_t, t, c_t, [cond, cond2], [1.0, 1.0], return_dict=False)
        assert max((a - b).abs().max().item() for a, b in zip(both.residuals, (*down, mid))) <= 1e-5
        eps = controlled_unet(unet, z_t, t, c_t, both)
        assert (eps - unet(z_t, t, c_t, down_block_additional_residuals=down,
                            mid_block_additional_residual=mid).sample).abs().max() <= 1e-5


@torch.no_grad()
def test_without_a_control_the_controlled_unet_is_the_locked_unet():
    unet = tiny_unet("cnref")
    z_t, t, c_t, _ = inputs(unet)
    assert torch.equal(controlled_unet(unet, z_t, t, c_t, None), unet(z_t, t, c_t).sample)


def test_scaled_rejects_wrong_length():
    c = Control(tuple(torch.ones(1, 1, 2, 2) for _ in range(12)), torch.ones(1, 1, 1, 1))
    with pytest.raises(ValueError, match="`w`.*13.*shape \\(5,\\)"):
        c.scaled(torch.ones(5))


def test_controls_of_different_topologies_do_not_add():
    a = Control(tuple(torch.zeros(1, 2, 4, 4) for _ in range(12)), torch.zeros(1, 2, 1, 1))
    b = Control(tuple(torch.zeros(1, 2, 4, 4) for _ in range(3)), torch.zeros(1, 2, 1, 1))
    with pytest.raises(ValueError, match=r"^`other`: expected a control with 12 down residuals, received 3$"):
        a + b


def test_repeat_rows_repeats_a_condition_or_each_feature_to_the_batch_and_copies_nothing_it_need_not():
    from cnref.paper.control import repeat_rows
    cond = torch.rand(2, 3, 4, 5)
    torch.testing.assert_close(repeat_rows(cond, 4), torch.cat([cond, cond]), rtol=0, atol=0)
    assert repeat_rows(cond, 2) is cond                                   # already the batch: the same tensor
    feats = [torch.rand(1, 8, 4, 4), torch.rand(1, 16, 2, 2)]
    out = repeat_rows(feats, 3)
    assert isinstance(out, list) and [f.shape for f in out] == [(3, 8, 4, 4), (3, 16, 2, 2)]
    assert all(torch.equal(o, torch.cat([f] * 3)) for o, f in zip(out, feats))
    one = [torch.rand(2, 8, 4, 4)]
    assert repeat_rows(one, 4)[0].shape == (4, 8, 4, 4) and repeat_rows(one, 2) is one


@pytest.mark.parametrize("kind", sorted(SCALE_KINDS))
def test_scales_are_their_formula_in_double_rounded_once(kind):
    """Every kind equals its formula evaluated in double precision and rounded once to float32, bit for bit (the same
    formula in single precision misses by an ulp on some connections)."""
    want = {"uniform": [1.0] * 13, "guess_official": [0.825 ** (12 - i) for i in range(13)],
            "guess_diffusers": [10 ** (-1 + i / 12) for i in range(13)], "resolution": [64 / h for h in SD_SIZES],
            "resolution_normalized": [8 / h for h in SD_SIZES]}[kind]
    w = connection_scales(kind, strength=0.7, sizes=SD_SIZES)
    assert w.dtype == torch.float32
    assert torch.equal(connection_scales(), torch.ones(13))         # the defaults: uniform, strength 1, 13
    if kind.startswith("resolution"):        # sizes whose ratios are not powers of two, where float32 rounds
        sizes = list(range(13, 0, -1))
        ratio = [13 / h for h in sizes] if kind == "resolution" else [1 / h for h in sizes]
        assert torch.equal(connection_scales(kind, strength=0.7, sizes=sizes),
                           torch.tensor([0.7 * x for x in ratio], dtype=torch.float64).float())
    assert torch.equal(w, torch.tensor([0.7 * x for x in want], dtype=torch.float64).float())


def test_scaling_keeps_the_residuals_precision():
    """A float scale is taken at the residuals' own precision: double residuals times 0.7 are exactly x * 0.7 in
    double (a scale rounded to float32 first, 0.699999988..., would miss)."""
    g = torch.Generator().manual_seed(0)
    ctl = Control(tuple(torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64) for _ in range(12)),
                  torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64))
    out = ctl.scaled(0.7)
    for x, y in zip(ctl.residuals, out.residuals):
        assert y.dtype == torch.float64 and torch.equal(y, x * 0.7)


def test_the_design_protocols_defaults():
    """A design that defines nothing: eps is not implemented (by name), diffusers has no class for it (word for word),
    `once` hands the condition back untouched and `trainable` lists the parameters that require gradients."""
    from torch import nn
    from cnref.paper.control import Design

    class Bare(Design):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)
            self.b.requires_grad_(False)

    d, cond = Bare(), torch.rand(1, 3, 4, 4)
    with pytest.raises(NotImplementedError, match=r"^Bare\.eps$"):
        d.eps(None, None, None, None, cond)
    refuses(lambda: d.diffusers_model(None), "`net`: expected a design diffusers has a class for (ControlNet, "
            "T2I-Adapter, ControlNet-XS), received Bare")
    assert d.once(cond) is cond
    assert d.trainable() == [d.a.weight, d.a.bias] and not d.residual
