"""ControlNet-XS over the cpu base: the 4-channel lift is exact, the model is the base at initialisation (its
control -> base connections are zero convolutions), and only the control trains."""
import pytest
import torch

from cnref.paper.controlnet import ControlNet
from cnref.successors.controlnet_xs import ControlNetXS, lift
from cnref.mini.shipping import load_base

from conftest import refuses


@torch.no_grad()
def test_lift_is_the_same_unet_on_its_own_channels():
    unet = load_base("cpu").unet
    z, t, c = torch.randn(2, 3, 32, 32), torch.tensor([3, 800]), torch.randn(2, 16, 32)
    lifted = lift(unet)
    out = lifted(torch.cat([z, torch.zeros(2, 1, 32, 32)], 1), t, c).sample
    torch.testing.assert_close(out[:, :3], unet(z, t, c).sample, rtol=1e-5, atol=1e-5)
    assert torch.all(out[:, 3] == 0)


@torch.no_grad()
def test_the_lifted_unet_says_it_has_four_channels_and_ignores_the_fourth_input():
    """diffusers' pipelines draw latents of `config.in_channels`, so the lift's config must say 4; its 4th input
    channel has zero weights (the output on the base's channels is the same whatever that channel holds); the base
    handed in is left as it was; a UNet already at 4 channels lifts to an equal copy; one whose output channels
    differ from its input's is refused at 4 channels or fewer too."""
    from cnref.mini.base import sd15_unet
    unet = load_base("smoke").unet
    s, d = unet.config.sample_size, unet.config.cross_attention_dim
    z, t, c = torch.randn(2, 3, s, s), torch.tensor([3, 800]), torch.randn(2, 5, d)
    lifted = lift(unet)
    assert (lifted.config.in_channels, lifted.config.out_channels) == (4, 4)
    assert (unet.config.in_channels, unet.conv_in.in_channels, unet.conv_out.out_channels) == (3, 3, 3)
    out = lifted(torch.cat([z, 10 * torch.randn(2, 1, s, s)], 1), t, c).sample
    torch.testing.assert_close(out[:, :3], unet(z, t, c).sample, rtol=1e-5, atol=1e-5)
    assert torch.all(out[:, 3] == 0)

    torch.manual_seed(0)
    four = sd15_unet(width=8, cross_attention_dim=16, sample_size=8, heads=2, norm_groups=4)
    z4, c4 = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 16)
    torch.testing.assert_close(lift(four)(z4, t, c4).sample, four(z4, t, c4).sample, rtol=0, atol=0)
    four.register_to_config(in_channels=3, out_channels=4)
    refuses(lambda: lift(four), "`unet`: expected a UNet with in_channels = out_channels <= 4, received 3 -> 4")


def test_xs_is_the_base_at_init_and_trains_only_its_control():
    unet = load_base("cpu").unet
    xs = ControlNetXS(unet, size_ratio=0.25)
    z, t, c = torch.randn(2, 3, 32, 32), torch.tensor([3, 800]), torch.randn(2, 16, 32)
    cond = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        # equal up to float32 rounding: diffusers recomputes the base in its own order of operations
        torch.testing.assert_close(xs(z, t, c, cond), unet(z, t, c).sample, rtol=1e-4, atol=1e-4)
    n_xs = sum(p.numel() for p in xs.trainable())
    n_controlnet = sum(p.numel() for p in ControlNet(unet).parameters())
    assert 0 < n_xs < n_controlnet / 2, (n_xs, n_controlnet)          # "a fraction of the parameters"
    assert not any(p.requires_grad for n, p in xs.model.named_parameters() if n.startswith("base_"))
    # the zero convs open under training: one step moves the output
    opt = torch.optim.AdamW(xs.trainable(), lr=1e-3)
    loss = (xs(z, t, c, cond) - torch.randn_like(z)).pow(2).mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        assert (xs(z, t, c, cond) - unet(z, t, c).sample).abs().max() > 1e-6


def randomised_xs(unet, **kw):
    torch.manual_seed(0)
    xs = ControlNetXS(unet, **kw)
    with torch.no_grad():
        for p in xs.trainable():
            p.add_(torch.randn_like(p) * 0.05)
    return xs.eval()


@torch.no_grad()
def test_xs_scales_its_control_and_repeats_a_shorter_condition():
    """`scale` is diffusers' conditioning_scale on every control -> base connection (0: the base alone, exactly
    as diffusers computes it); `eps` repeats a condition of fewer rows to the batch and runs its own copy of the
    base, whatever UNet it is handed."""
    unet = load_base("smoke").unet
    xs = randomised_xs(unet)
    s = unet.config.sample_size
    z, t, c = torch.randn(4, 3, s, s), torch.tensor([3, 800, 10, 500]), torch.randn(4, 5, unet.config.cross_attention_dim)
    cond = torch.rand(2, 3, s, s)
    full = xs(z, t, c, cond.repeat(2, 1, 1, 1))
    torch.testing.assert_close(xs.eps(None, z, t, c, cond), full, rtol=0, atol=0)
    z4 = torch.cat([z, torch.zeros(4, 1, s, s)], 1)
    for scale in (0.0, 0.5, 1.0):
        want = xs.model(z4, t, c, controlnet_cond=cond.repeat(2, 1, 1, 1), conditioning_scale=scale).sample[:, :3]
        torch.testing.assert_close(xs(z, t, c, cond.repeat(2, 1, 1, 1), scale=scale), want, rtol=0, atol=0)
    torch.testing.assert_close(full, want, rtol=0, atol=0)                 # the default scale is 1
    refuses(lambda: xs(z[0], t, c, cond), f"`z_t`: expected a 4-d tensor, received shape (3, {s}, {s})")
    assert (xs(z, t, c, cond.repeat(2, 1, 1, 1), scale=0.5) - full).abs().max() > 1e-4


def test_xs_reads_the_conditions_factor_and_refuses_what_it_cannot_lift():
    """A condition 2x the sample's size goes through the first two of SD's embedding widths (16, 32), one stride-2
    stage; a UNet with more than 4 channels, or other output than input channels, cannot be lifted; z_t must
    have the base's channels."""
    from cnref.mini.base import sd15_unet
    unet = load_base("smoke").unet
    xs = ControlNetXS(unet, factor=2, cond_channels=1, size_ratio=0.5)
    cfg = xs.model.config
    assert tuple(cfg.ctrl_conditioning_embedding_out_channels) == (16, 32) and cfg.ctrl_conditioning_channels == 1
    assert list(cfg.ctrl_block_out_channels) == [w // 2 for w in unet.config.block_out_channels]     # size_ratio
    assert tuple(ControlNetXS(unet).model.config.ctrl_conditioning_embedding_out_channels) == (16,)  # defaults
    wide = sd15_unet(width=8, cross_attention_dim=16, sample_size=16, heads=2, norm_groups=4)
    wide.register_to_config(in_channels=5, out_channels=5)
    with pytest.raises(ValueError, match=r"^`unet`: expected a UNet with in_channels = out_channels <= 4, received 5 -> 5$"):
        lift(wide)
    s = unet.config.sample_size
    with pytest.raises(ValueError, match=r"^`z_t`: expected 3 channels, received 4 channels"):
        xs(torch.randn(1, 4, s, s), torch.tensor([1]), torch.randn(1, 5, unet.config.cross_attention_dim),
           torch.rand(1, 1, 2 * s, 2 * s))


def test_the_xs_config_says_exactly_what_it_refuses():
    from cnref.successors.controlnet_xs import ControlNetXSConfig
    for kw, message in [({"factor": 1.5}, "`factor`: expected a positive integer, received 1.5"),
                        ({"factor": 0}, "`factor`: expected a positive integer, received 0"),
                        ({"cond_channels": 1.5}, "`cond_channels`: expected a positive integer, received 1.5"),
                        ({"size_ratio": 0}, "`size_ratio`: expected a positive number, received 0")]:
        refuses(lambda: ControlNetXSConfig(**kw), message)


def test_the_xs_config_builds_what_it_says_and_ControlNetXS_refuses_a_factor_it_cannot_embed():
    """`build` hands every field on (a 2x condition of one channel at half the widths); the defaults are a quarter
    of the base's widths; the condition embedding has stride-2 stages for factors 1, 2, 4 and 8 only."""
    from cnref.successors.controlnet_xs import ControlNetXSConfig
    unet = load_base("smoke").unet
    cfg = ControlNetXSConfig(factor=2, cond_channels=1, size_ratio=0.5).build(unet).model.config
    assert tuple(cfg.ctrl_conditioning_embedding_out_channels) == (16, 32) and cfg.ctrl_conditioning_channels == 1
    assert list(cfg.ctrl_block_out_channels) == [w // 2 for w in unet.config.block_out_channels]
    default = ControlNetXS(unet).model.config
    assert list(default.ctrl_block_out_channels) == [w // 4 for w in unet.config.block_out_channels]
    for factor in (3, 16):
        refuses(lambda: ControlNetXS(unet, factor=factor),
                f"`factor`: expected a power of two <= 8 (the condition embedding's stride-2 stages), received {factor}")
