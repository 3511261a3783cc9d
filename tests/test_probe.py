"""cnref.mini.probe: the gate measurements on a smoke run, and the readout on synthetic cases with a known answer."""
from dataclasses import replace

import pytest
import torch

from cnref.mini.presets import preset
from cnref.mini.probe import ridge_readout
from cnref.mini.train import train_controlnet

from conftest import refuses


def test_readout_finds_a_mask_that_is_there_and_not_one_that_is_not():
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    centres = torch.rand(20, 2, generator=g) * 8 + 4
    mask = ((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2 < 16).float()[:, None]
    noise = torch.randn(20, 6, 16, 16, generator=g)
    train = torch.arange(20) % 2 == 0
    # one channel carries the mask (scaled, shifted, a little noise): the held-out discs are found exactly
    carries = torch.cat([noise, 3 * mask - 1 + 0.05 * torch.randn(20, 1, 16, 16, generator=g)], 1)
    assert ridge_readout(carries, mask, train) > 0.99
    # features that know nothing of the disc: the readout cannot place it
    assert ridge_readout(noise, mask, train) < 0.2


def test_instrumented_run_records_the_gate_and_the_readout(tmp_path):
    cfg = replace(preset("smoke").train, steps=4, instrument=True)
    m = train_controlnet(cfg, tmp_path / "run")
    first, last = m.history[0], m.history[-1]
    assert len(first["gate"]["ratio"]) == 13 and len(first["gate"]["w_norm"]) == 14
    # zero convolutions: at step 0 nothing leaves the ControlNet and every Z2 weight is zero
    assert all(r == 0 for r in first["gate"]["ratio"]) and all(w == 0 for w in first["gate"]["w_norm"][1:])
    assert all(g is None for g in first["gate"]["g_norm"])                  # no step taken yet
    # after a few AdamW steps the gate has opened a little, and the gradients that opened it are recorded
    assert all(0 < r < 1 for r in last["gate"]["ratio"]) and all(w > 0 for w in last["gate"]["w_norm"])
    assert all(g is not None and g >= 0 for g in last["gate"]["g_norm"])
    assert 0 <= first["readout"]["copy"] <= 1 and first["readout"]["residual"] == 0.0   # a zero residual holds nothing


def test_cross_normalisation_opens_the_gate_at_step_0_and_zero_convs_do_not():
    """The gate at initialisation: exactly 0 for zero convolutions, exactly s on all 13 connections for cross
    normalisation (a residual with its locked feature's mean and std has its norm, times s), on the smoke base."""
    from cnref.paper.controlnet import ControlNet, ControlNetConfig
    from cnref.successors.controlnext import CrossNormConfig, CrossNormControlNet
    from cnref.mini.data import VAL_SEED, Fill50K
    from cnref.mini.probe import gate
    from cnref.mini.shipping import load_base
    base = load_base("smoke")
    b = Fill50K(size=base.cfg.size, seed=VAL_SEED).batch(range(4))
    g = torch.Generator().manual_seed(0)
    z_t, t = torch.randn(b["image"].shape, generator=g), torch.tensor([10, 300, 600, 900])
    c_t = base.encode_prompt(b["prompt"])
    torch.manual_seed(0)
    zero = gate(ControlNet(base.unet, ControlNetConfig()), base.unet, z_t, t, c_t, b["cond"])
    cross = gate(CrossNormControlNet(base.unet, CrossNormConfig(scale=0.35)), base.unet, z_t, t, c_t, b["cond"])
    assert all(r == 0 for r in zero["ratio"])
    # cross normalisation gives each residual its locked feature's mean and std, hence its norm: the ratio is s
    assert len(cross["ratio"]) == 13 and all(abs(r - 0.35) < 1e-4 for r in cross["ratio"]), cross["ratio"]


def test_cross_normalize_takes_the_locked_features_statistics():
    from cnref.successors.controlnext import cross_normalize
    g = torch.Generator().manual_seed(1)
    c, h = torch.randn(3, 4, 5, 5, generator=g) * 7 + 2, torch.randn(3, 4, 5, 5, generator=g) * 0.3 - 1
    out = cross_normalize(c, h)
    torch.testing.assert_close(out.mean((1, 2, 3)), h.mean((1, 2, 3)))
    torch.testing.assert_close(out.std((1, 2, 3)), h.std((1, 2, 3)))
    # an affine map of c does not change the result: only c's pattern is kept
    torch.testing.assert_close(cross_normalize(3 * c + 5, h), out)


def test_base_hint_encoder_copies_the_base_and_starts_at_zero():
    from cnref.successors.ctrlora import BaseEmbedderConfig
    from cnref.mini.shipping import load_base
    base = load_base("smoke")
    for trainable in (True, False):
        net = BaseEmbedderConfig(trainable=trainable).build(base.unet)
        E = net.controlnet_cond_embedding
        assert torch.equal(E.conv_in.weight, base.unet.conv_in.weight)
        # copies, not views: training E (trainable=True) must leave the locked base's own layers as they were
        assert not {p.data_ptr() for p in E.parameters()} & {p.data_ptr() for p in base.unet.parameters()}
        assert all(p.requires_grad == trainable for p in [*E.conv_in.parameters(), *E.resnet.parameters()])
        assert all(p.requires_grad for p in E.conv_out.parameters())
        assert not any(p.requires_grad for p in E.time_embedding.parameters())
        c = torch.rand(2, 3, base.cfg.size, base.cfg.size)
        assert torch.count_nonzero(E(c)) == 0                     # Z1 starts at zero, as in the official E
    with pytest.raises(ValueError, match=r"`factor`: expected 1 \(the base's first layers"):
        BaseEmbedderConfig(factor=2)


def test_a_randomly_initialised_base_embedder_has_the_bases_layers_but_none_of_its_weights():
    """`pretrained=False` (CtrLoRA controlled): the same modules and shapes as the pretrained embedder, every
    weight of conv_in, the ResNet block and the time embedding drawn afresh (GroupNorm's affine back to 1 and 0), a
    function of the seed; Z1 still zero, so the ControlNet still starts as the base."""
    from cnref.successors.ctrlora import BaseEmbedderConfig
    from cnref.mini.shipping import load_base
    unet = load_base("smoke").unet
    torch.manual_seed(0)
    pre = BaseEmbedderConfig().build(unet).controlnet_cond_embedding
    torch.manual_seed(0)
    rnd = BaseEmbedderConfig(pretrained=False).build(unet).controlnet_cond_embedding
    torch.manual_seed(0)
    again = BaseEmbedderConfig(pretrained=False).build(unet).controlnet_cond_embedding
    layers = lambda E: {k: v for k, v in E.state_dict().items() if not k.startswith("conv_out")}
    a, b = layers(pre), layers(rnd)
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    moved = [k for k in a if not k.endswith(("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"))]
    assert all(not torch.equal(a[k], b[k]) for k in moved)
    assert all(torch.equal(b[k], torch.ones_like(b[k]) if k.endswith("weight") else torch.zeros_like(b[k]))
               for k in a if k not in moved)
    assert all(torch.equal(v, layers(again)[k]) for k, v in b.items())
    assert torch.count_nonzero(rnd(torch.rand(2, 3, 16, 16))) == 0


def test_the_base_hint_encoder_is_the_bases_own_first_layers_at_t_zero_on_2c_minus_1():
    """CtrLoRA's embedder in pixel space, composed by hand from the locked base's own modules: the first ResNet
    block on conv_in(2 c - 1) with the time embedding of t = 0, then Z1 (given weights here so that it passes
    something). A condition with other channels than the base's input is refused."""
    from cnref.successors.ctrlora import BaseHintEncoder
    from cnref.mini.shipping import load_base
    unet = load_base("smoke").unet
    E = BaseHintEncoder(unet, 8)
    torch.manual_seed(0)
    with torch.no_grad():
        E.conv_out.weight.normal_(0, 0.1); E.conv_out.bias.normal_(0, 0.1)
        c = torch.rand(2, 3, 16, 16)
        emb = unet.time_embedding(unet.time_proj(torch.zeros(2)))
        want = E.conv_out(unet.down_blocks[0].resnets[0](unet.conv_in(2 * c - 1), emb))
        torch.testing.assert_close(E(c), want, rtol=0, atol=1e-6)
    assert (E.factor, E.cond_channels) == (1, 3)
    with pytest.raises(ValueError, match=r"^`cond_channels`: expected the base's input channels 3, received 1$"):
        BaseHintEncoder(unet, 8, cond_channels=1)


def test_the_base_embedder_controlnet_keeps_its_settings_and_says_exactly_what_it_refuses():
    """Built from its config: factor 1, the config's condition channels and timesteps, the embedder frozen as
    asked; each refusal word for word."""
    from cnref.successors.ctrlora import BaseEmbedderConfig, BaseHintEncoder
    from cnref.mini.shipping import load_base
    unet = load_base("smoke").unet
    net = BaseEmbedderConfig(trainable=False).build(unet, num_train_timesteps=500)
    assert isinstance(net.controlnet_cond_embedding, BaseHintEncoder)
    assert (net.cfg.factor, net.cfg.cond_channels, net.num_train_timesteps) == (1, 3, 500)
    assert not any(p.requires_grad for p in net.controlnet_cond_embedding.resnet.parameters())
    cases = [(lambda: BaseEmbedderConfig(factor=2),
              "`factor`: expected 1 (the base's first layers read conditions at the sample's size), received 2"),
             (lambda: BaseEmbedderConfig(cond_channels=1.5), "`cond_channels`: expected a positive integer, received 1.5"),
             (lambda: net.diffusers_model(unet), "`net`: expected a ControlNet with the official hint encoder "
              "(diffusers' ControlNetModel), received the base embedder"),
             (lambda: net.controlnet_cond_embedding(torch.rand(3, 16, 16)),
              "`cond`: expected a 4-d tensor, received shape (3, 16, 16)")]
    for call, message in cases:
        refuses(call, message)
