"""ControlNeXt: the control enters once, after the first down block, at the feature's own statistics (the
official SD1.5 code's formula, written out here), the skips untouched."""
import torch

from cnref.paper.controlnet import ControlNet
from cnref.successors.controlnext import ControlNeXt, controlnext_unet, injected
from cnref.mini.shipping import load_base

from conftest import refuses


def first_block_output(unet, z, t, c):
    seen = []
    handle = unet.down_blocks[0].register_forward_hook(lambda m, a, out: seen.append(out))
    try:
        unet(z, t, c)
    finally:
        handle.remove()
    return seen[0]


def net_and_inputs(cond_batch: int):
    """The cpu base, a ControlNeXt at s = 0.35 and a batch of two (z_t, t, c_t) with `cond_batch` conditions."""
    unet = load_base("cpu").unet
    torch.manual_seed(0)
    net = ControlNeXt(unet, scale=0.35)
    z, t, c = torch.randn(2, 3, 32, 32), torch.tensor([5, 900]), torch.randn(2, 16, 32)
    return unet, net, z, t, c, torch.rand(cond_batch, 3, 32, 32)


@torch.no_grad()
def test_injection_is_the_cross_normalised_control_after_the_first_block():
    unet, net, z, t, c, cond = net_and_inputs(2)
    control = net(cond, t)
    assert control.shape == (2, unet.config.block_out_channels[0], 32, 32)
    h, skips = first_block_output(unet, z, t, c)
    with injected(unet, control, net.scale):
        h2, skips2 = first_block_output(unet, z, t, c)
    # the official formula, per sample over (C, H, W): (c - mean c) * std h / std c + mean h, pooled to h's size
    p = torch.nn.functional.avg_pool2d(control, 2)
    m_c, s_c = p.mean((1, 2, 3), keepdim=True), p.std((1, 2, 3), keepdim=True)
    m_h, s_h = h.mean((1, 2, 3), keepdim=True), h.std((1, 2, 3), keepdim=True)
    torch.testing.assert_close(h2, h + 0.35 * ((p - m_c) * (s_h / s_c) + m_h), rtol=1e-5, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(skips, skips2))
    eps = controlnext_unet(unet, net, z, t, c, cond)
    assert (eps - unet(z, t, c).sample).abs().max() > 1e-3                    # not zero at initialisation
    assert not unet.down_blocks[0]._forward_hooks                              # gone after the call


def test_module_sizes_and_the_official_8x_reduction():
    unet = load_base("cpu").unet
    net = ControlNeXt(unet)
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in ControlNet(unet).parameters()) / 4
    big = ControlNeXt(unet, factor=8)            # SD's 512x512 conditions for 64x64 latents: 8x down
    assert big(torch.rand(1, 3, 256, 256), torch.tensor([1])).shape[-1] == 32


@torch.no_grad()
def test_the_module_is_the_official_stack_composed_by_hand():
    """The condition network, written out from its parts in the official order: embedding, two (ResNet block with
    the timestep, downsampler) stages, the residual middle convs (mid(h) + h, as the official mid_convs), the 1x1
    projection."""
    unet = load_base("cpu").unet
    torch.manual_seed(0)
    net = ControlNeXt(unet, factor=2)
    cond, t = torch.rand(2, 3, 64, 64), torch.tensor([5, 900])
    emb = net.time_embedding(net.time_proj(t))
    h = net.embedding(cond)
    h = net.down_sample[0](net.down_res[0](h, emb))
    h = net.down_sample[1](net.down_res[1](h, emb))
    torch.testing.assert_close(net(cond, t), net.out(net.mid(h) + h))
    assert (net(cond, t) - net.out(net.mid(h))).abs().max() > 1e-3         # the residual matters
    assert net(cond, t).shape == (2, unet.config.block_out_channels[0], 32, 32)


def test_the_modules_layers_are_the_official_stack_at_cnrefs_widths():
    """Every parameter's shape and every GroupNorm's groups, written out from the official module's description
    (models/controlnext.py, at widths w0 = 32, w1 = 64 for a base whose first level is 32 wide): the time embedding
    at 4 w0, a three-conv embedding with GroupNorm, two ResNet blocks with the timestep (the second widens to w1,
    with a 1x1 shortcut), a strided 3x3 conv per stride-2 stage, the middle convs and the 1x1 projection."""
    unet = load_base("cpu").unet
    w0, w1, temb, out = 32, 64, 128, unet.config.block_out_channels[0]
    conv = lambda o, i, k=3: {"weight": (o, i, k, k), "bias": (o,)}
    vec = lambda n: {"weight": (n,), "bias": (n,)}
    lin = lambda o, i: {"weight": (o, i), "bias": (o,)}
    resnet = lambda i, o: {"norm1": vec(i), "conv1": conv(o, i), "time_emb_proj": lin(o, temb), "norm2": vec(o),
                           "conv2": conv(o, o), **({"conv_shortcut": conv(o, i, 1)} if i != o else {})}
    want = {"time_embedding": {"linear_1": lin(temb, w0), "linear_2": lin(temb, temb)},
            "embedding": {"0": conv(w0 // 2, 3), "1": vec(w0 // 2), "3": conv(w0 // 2, w0 // 2), "4": vec(w0 // 2),
                          "6": conv(w0, w0 // 2), "7": vec(w0)},
            "down_res": {"0": resnet(w0, w0), "1": resnet(w0, w1)},
            "down_sample": {"0": {"Conv2d_0": conv(w0, w0)}},            # factor 2: one stride-2 stage
            "mid": {"0": conv(w1, w1), "2": vec(w1), "3": conv(w1, w1), "4": vec(w1)},
            "out": conv(out, w1, 1)}

    def flat(d, prefix=""):
        for k, v in d.items():
            yield from flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [(prefix + k, v)]
    net = ControlNeXt(unet, factor=2)
    assert {n: tuple(p.shape) for n, p in net.named_parameters()} == dict(flat(want))
    groups = {n: m.num_groups for n, m in net.named_modules() if isinstance(m, torch.nn.GroupNorm)}
    assert groups == {"embedding.1": 2, "embedding.4": 2, "embedding.7": 2, "down_res.0.norm1": 4,
                      "down_res.0.norm2": 4, "down_res.1.norm1": 8, "down_res.1.norm2": 8, "mid.2": 8, "mid.4": 8}
    assert net.down_sample[0].conv.stride == (2, 2) and isinstance(net.down_sample[1], torch.nn.Identity)


@torch.no_grad()
def test_controlnexts_eps_is_the_injected_unet_with_the_condition_repeated():
    unet, net, z, t, c, cond = net_and_inputs(1)
    torch.testing.assert_close(net.eps(unet, z, t, c, cond), controlnext_unet(unet, net, z, t, c, cond.repeat(2, 1, 1, 1)))
    # one timestep for the whole batch, as a sampler passes it, is that timestep for every row
    torch.testing.assert_close(controlnext_unet(unet, net, z, torch.tensor(5), c, cond.repeat(2, 1, 1, 1)),
                               controlnext_unet(unet, net, z, torch.tensor([5, 5]), c, cond.repeat(2, 1, 1, 1)))


def test_controlnext_refusals_say_exactly_what_they_expected():
    from cnref.successors.controlnext import ControlNeXtConfig, CrossNormConfig, unlock_attention_out
    unet = load_base("cpu").unet
    cases = [(lambda: ControlNeXt(unet, factor=16), "`factor`: expected a power of two <= 8 (the official module's "
              "stride-2 stages), received 16"),
             (lambda: ControlNeXtConfig(factor=1.5), "`factor`: expected a positive integer, received 1.5"),
             (lambda: ControlNeXtConfig(cond_channels=1.5), "`cond_channels`: expected a positive integer, received 1.5"),
             (lambda: ControlNeXtConfig(scale=0), "`scale`: expected a positive number, received 0"),
             (lambda: CrossNormConfig(scale=0), "`scale`: expected a positive number, received 0"),
             (lambda: ControlNeXt(unet)(torch.rand(3, 32, 32), torch.tensor([1])),
              "`cond`: expected a 4-d tensor, received shape (3, 32, 32)"),
             (lambda: unlock_attention_out(torch.nn.Linear(1, 1)),
              "`unet`: expected a UNet with attention (parameters named to_out), received Linear"),
             (lambda: ControlNeXt(unet).diffusers_model(unet), "`net`: expected a design diffusers has a class for "
              "(ControlNeXt has none: its official code ships its own UNet; keep its state dict), received ControlNeXt"),
             (lambda: CrossNormConfig().build(unet).diffusers_model(unet), "`net`: expected a ControlNet whose "
              "residuals enter through zero convs (diffusers' ControlNetModel), received cross-normalised residuals")]
    for call, message in cases:
        refuses(call, message)
