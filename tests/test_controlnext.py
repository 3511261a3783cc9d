"""ControlNeXt: the control enters once, after the first down block, at the feature's own statistics (the
official SD1.5 code's formula, written out here), the skips untouched."""
import torch

from cnref.paper.controlnet import ControlNet
from cnref.successors.controlnext import ControlNeXt, controlnext_unet, injected
from cnref.mini.shipping import load_base


def first_block_output(unet, z, t, c):
    seen = []
    handle = unet.down_blocks[0].register_forward_hook(lambda m, a, out: seen.append(out))
    try:
        unet(z, t, c)
    finally:
        handle.remove()
    return seen[0]


@torch.no_grad()
def test_injection_is_the_cross_normalised_control_after_the_first_block():
    unet = load_base("cpu").unet
    torch.manual_seed(0)
    net = ControlNeXt(unet, scale=0.35)
    z, t, c = torch.randn(2, 3, 32, 32), torch.tensor([5, 900]), torch.randn(2, 16, 32)
    cond = torch.rand(2, 3, 32, 32)
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
