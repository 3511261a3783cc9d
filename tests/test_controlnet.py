"""cnref's ControlNet vs diffusers' ControlNetModel, identity at init, gradient flow, export."""
import pytest
import torch
from diffusers import ControlNetModel

from cnref.paper.control import Control, connection_scales, controlled_unet
from cnref.paper.controlnet import ControlNet, ControlNetConfig
from cnref.paper.interop import from_diffusers, load_pretrained, save_pretrained

from conftest import inputs, randomize_zero_convs, tiny_unet

TOL = 1e-5


@pytest.mark.parametrize("factor", [1, 8])
def test_identity_at_init(unet, factor):
    net = ControlNet(unet, ControlNetConfig(factor=factor))
    z_t, t, c_t, cond = inputs(unet, factor=factor)
    with torch.no_grad():
        ctl = net(z_t, t, c_t, cond)
        assert len(ctl.residuals) == 13
        assert all(torch.count_nonzero(r) == 0 for r in ctl.residuals)
        assert torch.equal(controlled_unet(unet, z_t, t, c_t, ctl), controlled_unet(unet, z_t, t, c_t))


@pytest.mark.parametrize("factor", [1, 2, 8])
def test_matches_diffusers_controlnetmodel(unet, factor):
    """Same weights (random zero convs), independent forward code: residuals and eps within 1e-5."""
    from cnref.paper.hint import official_channels
    ref = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=official_channels(factor)).eval()
    randomize_zero_convs(_Wrap(ref))
    net = ControlNet(unet, ControlNetConfig(factor=factor))
    net.load_state_dict(ref.state_dict(), strict=True)
    net.eval()
    z_t, t, c_t, cond = inputs(unet, factor=factor)
    with torch.no_grad():
        ours = net(z_t, t, c_t, cond)
        down, mid = ref(z_t, t, c_t, cond, return_dict=False)
        diffs = [(a - b).abs().max().item() for a, b in zip(ours.residuals, (*down, mid))]
        assert max(diffs) <= TOL, diffs
        assert min(r.abs().max().item() for r in ours.residuals) > 1e-3    # the comparison is not vacuous
        eps_ours = controlled_unet(unet, z_t, t, c_t, ours)
        eps_ref = unet(z_t, t, c_t, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
        assert (eps_ours - eps_ref).abs().max().item() <= TOL
        # guess mode and conditioning scale: diffusers' logspace(-1, 0, 13) * scale
        down_g, mid_g = ref(z_t, t, c_t, cond, conditioning_scale=0.7, guess_mode=True, return_dict=False)
        ours_g = ours.scaled(connection_scales("guess_diffusers", strength=0.7))
        assert max((a - b).abs().max().item() for a, b in zip(ours_g.residuals, (*down_g, mid_g))) <= TOL


class _Wrap:
    """Lists the zero convs of a diffusers ControlNetModel like cnref's ControlNet.zero_convs()."""
    def __init__(self, m):
        self.m = m

    def zero_convs(self):
        return [self.m.controlnet_cond_embedding.conv_out, *self.m.controlnet_down_blocks, self.m.controlnet_mid_block]


def test_mid_only_reaches_the_unet():
    """diffusers ignores a middle residual passed alone; cnref's mid-only control must change eps."""
    unet = tiny_unet("cnref")
    net = ControlNet(unet, ControlNetConfig(connections="mid_only"))
    randomize_zero_convs(net)
    z_t, t, c_t, cond = inputs(unet)
    with torch.no_grad():
        ctl = net(z_t, t, c_t, cond)
        assert all(torch.count_nonzero(r) == 0 for r in ctl.down)
        plain = unet(z_t, t, c_t).sample
        assert torch.equal(unet(z_t, t, c_t, mid_block_additional_residual=ctl.mid).sample, plain)  # the trap
        assert (controlled_unet(unet, z_t, t, c_t, ctl) - plain).abs().max() > 1e-3
        # and it equals the exported diffusers model, whose skip convs are zero
        down, mid = net.diffusers_model(unet)(z_t, t, c_t, cond, return_dict=False)
        assert (controlled_unet(unet, z_t, t, c_t, ctl) - controlled_unet(unet, z_t, t, c_t, Control(tuple(down), mid))).abs().max() <= TOL


def test_export_round_trip(tmp_path, unet):
    net = ControlNet(unet, ControlNetConfig(factor=2))
    randomize_zero_convs(net)
    save_pretrained(net, unet, tmp_path / "cn")
    back = load_pretrained(tmp_path / "cn", unet)
    z_t, t, c_t, cond = inputs(unet, factor=2)
    with torch.no_grad():
        a, b = net(z_t, t, c_t, cond), back(z_t, t, c_t, cond)
    assert all(torch.equal(x, y) for x, y in zip(a.residuals, b.residuals))
    assert from_diffusers(net.diffusers_model(unet), unet).cfg == net.cfg


@pytest.mark.parametrize("factor, cond_channels", [(1, 1), (8, 3)])
def test_a_diffusers_controlnetmodel_becomes_the_same_cnref_controlnet(factor, cond_channels):
    """`from_diffusers` reads the factor from the hint encoder's channel list and the condition's channels from the
    config, copies every weight, and refuses a model with weights it has no place for, or a layout it cannot be."""
    from diffusers import ControlNetModel
    from cnref.paper.hint import official_channels
    unet = tiny_unet("cnref")
    model = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=official_channels(factor),
                                      conditioning_channels=cond_channels)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    net = from_diffusers(model, unet)
    assert (net.cfg.factor, net.cfg.cond_channels, net.cfg.hint) == (factor, cond_channels, "official")
    z_t, t, c_t, _ = inputs(unet)
    s = unet.config.sample_size * factor
    cond = torch.rand(2, cond_channels, s, s)
    with torch.no_grad():
        down, mid = model(z_t, t, c_t, cond, return_dict=False)
        ctl = net(z_t, t, c_t, cond)
    assert all(torch.allclose(a, b, atol=TOL) for a, b in zip(ctl.residuals, (*down, mid)))
    model.extra = torch.nn.Linear(1, 1)
    with pytest.raises(RuntimeError, match="Unexpected key.*extra.weight"):
        from_diffusers(model, unet)
    odd = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32, 64))
    with pytest.raises(ValueError, match=r"^`model.config.conditioning_embedding_out_channels`: expected a prefix of "
                                         r"\(16, 32, 96, 256\), received \(16, 32, 64\)$"):
        from_diffusers(odd, unet)
    pooled = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16,))
    pooled.register_to_config(global_pool_conditions=True)
    with pytest.raises(ValueError, match=r"^`model.config.global_pool_conditions`: expected False, received True$"):
        from_diffusers(pooled, unet)


@pytest.mark.parametrize("cfg, message", [
    (ControlNetConfig(lite=True), r"^`net`: expected a ControlNet with a full trainable copy \(diffusers has no "
                                  r"ControlNet-lite\), received lite=True$"),
    (ControlNetConfig(hint="paper", factor=16), r"^`net.cfg.hint`: expected 'official' \(diffusers has only the official "
                                                r"hint encoder\), received 'paper'$")])
def test_variants_without_diffusers_counterpart_refuse_export(cfg, message):
    """Lite and the paper's hint encoder are refused by name, with what diffusers lacks."""
    unet = tiny_unet("cnref")
    with pytest.raises(ValueError, match=message):
        ControlNet(unet, cfg).diffusers_model(unet)


@pytest.mark.parametrize("cfg", [ControlNetConfig(lite=True), ControlNetConfig(hint="paper", factor=4),
                                 ControlNetConfig(connections="mid_only")])
def test_variants_identity_at_init(cfg):
    unet = tiny_unet("cnref")
    net = ControlNet(unet, cfg)
    z_t, t, c_t, cond = inputs(unet, factor=cfg.factor)
    with torch.no_grad():
        assert torch.equal(controlled_unet(unet, z_t, t, c_t, net(z_t, t, c_t, cond)), unet(z_t, t, c_t).sample)


def _pooled_std_ok(tensors, std):
    """The pooled values' std equals `std` within sampling error (4 standard errors: std / sqrt(2n) each)."""
    x = torch.cat([t.detach().flatten() for t in tensors])
    return abs(x.std().item() / std - 1) < 4 / (2 * x.numel()) ** 0.5 and abs(x.mean().item()) < 4 * std / x.numel() ** 0.5


@pytest.mark.parametrize("init", ["gaussian", "gaussian_z1", "gaussian_z2"])
def test_gaussian_init_draws_exactly_the_named_convs(init):
    """Fig. 8b's Gaussian init and the which-gate variants: the named zero convs get weights and biases from
    N(0, std^2) (pooled std and mean within sampling error), the others stay exactly zero."""
    unet = tiny_unet("cnref")
    std = 0.05
    net = ControlNet(unet, ControlNetConfig(init=init, gaussian_std=std))
    z1, *z2 = net.zero_convs()
    drawn = {"gaussian": [z1, *z2], "gaussian_z1": [z1], "gaussian_z2": z2}[init]
    for part in ("weight", "bias"):
        assert _pooled_std_ok([getattr(z, part) for z in drawn], std), part
        assert all(torch.count_nonzero(getattr(z, part)) == 0 for z in [z1, *z2] if z not in drawn), part
    z_t, t, c_t, cond = inputs(unet)
    with torch.no_grad():
        moved = (controlled_unet(unet, z_t, t, c_t, net(z_t, t, c_t, cond)) - unet(z_t, t, c_t).sample).abs().max()
    # Z2 drawn: the residuals are no longer zero; Z1 drawn alone: Z2 = 0 still closes every connection
    assert (moved > 1e-4) == (init != "gaussian_z1")


def test_lr_groups_split_the_zero_convs_from_the_rest():
    """lr x10 on one part: the zero convs (Z1 and the 13 Z2) in one group, everything else the control trains in
    the other, together exactly the trainable parameters."""
    from dataclasses import replace
    from cnref.mini.presets import preset
    from cnref.mini.train import lr_groups
    from cnref.successors.t2i_adapter import T2IAdapterConfig
    unet = tiny_unet("cnref")
    net = ControlNet(unet)
    cfg = replace(preset("smoke").train, lr=1e-4, zero_conv_lr_scale=10.0)
    zero, rest = lr_groups(net, cfg)
    assert zero["lr"] == pytest.approx(1e-3) and rest["lr"] == pytest.approx(1e-4)
    assert {id(p) for p in zero["params"]} == {id(p) for z in net.zero_convs() for p in z.parameters()}
    assert len(zero["params"]) == 2 * 14
    assert sorted(map(id, zero["params"] + rest["params"])) == sorted(map(id, net.trainable()))
    assert lr_groups(net, replace(cfg, zero_conv_lr_scale=1.0))[0]["lr"] == 1e-4
    with pytest.raises(ValueError, match="zero_conv_lr_scale"):
        lr_groups(T2IAdapterConfig().build(unet), cfg)


def test_gradient_flow_over_the_unet():
    """Step 1: only the 13 output zero convs get gradient; step 2: the copy and Z1; step 3: E's inner convs."""
    unet = tiny_unet("cnref").requires_grad_(False)
    net = ControlNet(unet)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    z_t, t, c_t, cond = inputs(unet)
    target = torch.randn_like(z_t)
    outs = [*net.controlnet_down_blocks, net.controlnet_mid_block]
    hint = net.controlnet_cond_embedding
    inner_hint = [p for n, p in hint.named_parameters() if not n.startswith("conv_out")]
    copy = [*net.down_blocks.parameters(), *net.mid_block.parameters(), *net.conv_in.parameters()]

    def grads():
        opt.zero_grad(set_to_none=False)
        ((controlled_unet(unet, z_t, t, c_t, net(z_t, t, c_t, cond)) - target) ** 2).mean().backward()

    def any_nonzero(ps):
        return any(torch.count_nonzero(p.grad) > 0 for p in ps)

    grads()
    assert all(torch.count_nonzero(p.grad) > 0 for z in outs for p in z.parameters())
    assert not any_nonzero(copy) and not any_nonzero(hint.parameters())
    assert all(p.grad is None for p in unet.parameters())
    opt.step()
    grads()
    assert any_nonzero(copy) and any_nonzero(hint.conv_out.parameters()) and not any_nonzero(inner_hint)
    opt.step()
    grads()
    assert any_nonzero(inner_hint)


def test_gradient_checkpointing_gives_the_same_gradients(unet, monkeypatch):
    """Recomputing activations in backward (cnref.paper.controlnet.set_gradient_checkpointing, on the trainable
    copy and the locked UNet) changes memory and time, not the gradients; and it does recompute: every block of
    both goes through torch's checkpoint when on, none when off."""
    import torch.utils.checkpoint as tc
    calls, real = [], tc.checkpoint
    monkeypatch.setattr(tc, "checkpoint", lambda fn, *a, **k: calls.append(fn) or real(fn, *a, **k))
    from cnref.paper.control import controlled_unet
    from cnref.paper.controlnet import set_gradient_checkpointing
    z_t, t, c_t, cond = inputs(unet)
    net = ControlNet(unet, ControlNetConfig())
    torch.manual_seed(0)
    for p in net.parameters():
        p.data += 0.02 * torch.randn_like(p)
    unet.requires_grad_(False).train()
    net.train()
    grads, counts = [], []
    blocks = len(net.down_blocks) + 1 + len(unet.down_blocks) + 1 + len(unet.up_blocks)
    for on in (False, True):
        if on:                       # on by default
            set_gradient_checkpointing(net); set_gradient_checkpointing(unet)
        calls.clear()
        # torch.autograd.grad, not only .backward(): non-reentrant checkpointing serves both
        loss = controlled_unet(unet, z_t, t, c_t, net(z_t, t, c_t, cond)).square().mean()
        grads.append(torch.autograd.grad(loss, list(net.parameters())))
        counts.append(len(calls))
    assert counts[0] == 0 and counts[1] >= blocks, (counts, blocks)
    set_gradient_checkpointing(unet, False)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match=r"^`module`: expected a module with diffusers blocks \(attribute "
                                         r"gradient_checkpointing\), received Linear$"):
        set_gradient_checkpointing(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("factor", [1, 2, 4, 8])
def test_official_hint_encoder_is_diffusers_conditioning_embedding(factor):
    """cnref's E (written out here) against diffusers' ControlNetConditioningEmbedding: the same parameter
    names and shapes, the same initialisation from the same seed, and the same output with the same weights."""
    from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding
    from cnref.paper.hint import OfficialHintEncoder, official_channels
    torch.manual_seed(3)
    ours = OfficialHintEncoder(24, factor)
    torch.manual_seed(3)
    ref = ControlNetConditioningEmbedding(24, 3, official_channels(factor))
    sd_ours, sd_ref = ours.state_dict(), ref.state_dict()
    assert list(sd_ours) == list(sd_ref)
    assert all(torch.equal(sd_ours[k], sd_ref[k]) for k in sd_ref)          # the same init, draw for draw
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in ref.parameters():           # away from zero init, so that the output is non-trivial
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    ours.load_state_dict(ref.state_dict(), strict=True)
    c = torch.rand(2, 3, 8 * factor, 8 * factor, generator=g)
    with torch.no_grad():
        a, b = ours(c), ref(c)
    assert a.shape == (2, 24, 8, 8) and a.abs().max() > 1e-2
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("factor", [1, 4, 16])
def test_the_papers_hint_encoder_is_its_text_composed_by_hand(factor):
    """Sec. 3.2: four 4x4 convolutions with ReLU (16, 32, 64, 128 channels), stride 2 while the condition is larger
    than the latents, 'same' padding otherwise, then a zero 1x1 conv; computed here with F.conv2d on the module's own
    weights (Z1 given weights so its output is not zero)."""
    import torch.nn.functional as F
    from cnref.paper.hint import PaperHintEncoder
    torch.manual_seed(0)
    enc = PaperHintEncoder(8, factor)
    assert [c.out_channels for c in enc.convs] == [16, 32, 64, 128] and all(c.kernel_size == (4, 4) for c in enc.convs)
    with torch.no_grad():
        enc.conv_out.weight.normal_(0, 0.1)
    c = torch.rand(2, 3, 8 * factor, 8 * factor)
    h, halvings = c, {1: 0, 4: 2, 16: 4}[factor]
    for k, conv in enumerate(enc.convs):
        if k < halvings:
            h = F.conv2d(h, conv.weight, conv.bias, stride=2, padding=1)               # halves the size
        else:
            h = F.conv2d(F.pad(h, (1, 2, 1, 2)), conv.weight, conv.bias)            # keeps it
        h = torch.relu(h)
    want = F.conv2d(h, enc.conv_out.weight, enc.conv_out.bias)
    got = enc(c)
    assert got.shape == (2, 8, 8, 8) and torch.allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("variant, factor", [("paper", 16), ("official", 8)])
def test_each_hint_encoders_defaults_and_its_refusals(variant, factor):
    """Left at their defaults, the paper's E downsamples 16x (four stride-2 layers) and the official one 8x, both
    from 3 channels; a condition of another layout is refused by name, with what came instead."""
    from cnref.paper.hint import OfficialHintEncoder, PaperHintEncoder
    enc = {"paper": PaperHintEncoder, "official": OfficialHintEncoder}[variant](8)
    assert (enc.factor, enc.cond_channels) == (factor, 3)
    assert enc(torch.rand(1, 3, 64, 64)).shape == (1, 8, 64 // factor, 64 // factor)
    with pytest.raises(ValueError, match=r"^`cond`: expected 3 channels, received 1 channels \(shape \(1, 1, 64, 64\)\)$"):
        enc(torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError, match=r"^`cond`: expected a 4-d tensor, received shape \(3, 64, 64\)$"):
        enc(torch.rand(3, 64, 64))
    top = {"paper": 16, "official": 8}[variant]
    with pytest.raises(ValueError, match=rf"^`factor`: expected a power of two <= {top}"):
        type(enc)(8, 2 * top)


@torch.no_grad()
@pytest.mark.parametrize("rows", [1, 2])
def test_the_controlnets_eps_is_the_locked_unet_under_its_control_with_the_condition_repeated(rows):
    """ControlNet.eps (the control protocol): eps_theta(z_t, t, c_t, c_f) with a condition of fewer rows than z_t
    (CFG's two halves) repeated to z_t's batch, the text reaching both the control and the locked UNet."""
    unet = tiny_unet("cnref")
    net = ControlNet(unet)
    randomize_zero_convs(net)
    z_t, t, c_t, cond = inputs(unet, batch=4)
    cond = cond[:rows]
    want = controlled_unet(unet, z_t, t, c_t, net(z_t, t, c_t, cond.repeat(4 // rows, 1, 1, 1)))
    torch.testing.assert_close(net.eps(unet, z_t, t, c_t, cond), want, rtol=0, atol=0)


def test_unlocking_the_decoder_trains_the_official_codes_output_blocks_and_out_only():
    """The paper's large-scale option (the official sd_locked=False): the UNet's output blocks and its `out` (norm
    and final conv) become trainable, and exactly their parameters are returned for the optimiser; the encoder,
    middle block, input conv and time embedding stay locked."""
    from cnref.paper.controlnet import unlock_decoder
    unet = tiny_unet("cnref").requires_grad_(False)
    params = unlock_decoder(unet)
    want = [*unet.up_blocks.parameters(), *unet.conv_norm_out.parameters(), *unet.conv_out.parameters()]
    assert [id(p) for p in params] == [id(p) for p in want]
    decoder = {id(p) for p in want}
    assert all(p.requires_grad == (id(p) in decoder) for p in unet.parameters())
    bare = tiny_unet("cnref").requires_grad_(False)
    bare.conv_norm_out = None                      # a UNet built without a final norm
    assert len(unlock_decoder(bare)) == len(list(bare.up_blocks.parameters())) + 2


def test_the_protocols_defaults_name_the_design_that_lacks_them():
    from cnref.paper.control import Design

    class Bare(Design):
        pass

    with pytest.raises(NotImplementedError, match=r"^Bare\.eps$"):
        Bare().eps(None, None, None, None, None)
    with pytest.raises(ValueError, match=r"^`net`: expected a design diffusers has a class for \(ControlNet, "
                                         r"T2I-Adapter, ControlNet-XS\), received Bare$"):
        Bare().diffusers_model(None)


def test_export_keeps_the_conditions_channels():
    """A one-channel condition (a depth map, say) exports as a ControlNetModel with conditioning_channels = 1 that
    computes the same residuals."""
    unet = tiny_unet("cnref")
    net = ControlNet(unet, ControlNetConfig(cond_channels=1))
    randomize_zero_convs(net)
    model = net.diffusers_model(unet)
    assert model.config.conditioning_channels == 1
    z_t, t, c_t, _ = inputs(unet)
    cond = torch.rand(2, 1, unet.config.sample_size, unet.config.sample_size)
    with torch.no_grad():
        down, mid = model(z_t, t, c_t, cond, return_dict=False)
        ours = net(z_t, t, c_t, cond)
    assert all(torch.allclose(a, b, atol=TOL) for a, b in zip(ours.residuals, (*down, mid)))
