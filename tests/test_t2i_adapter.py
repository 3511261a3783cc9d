"""T2I-Adapter's injection: equal to diffusers' own path where diffusers' layout assumption holds, and at the
end of every level (before downsampling) on the cpu base, where it does not."""
import pytest
import torch
from diffusers import UNet2DConditionModel

from cnref.mini.shipping import load_base
from cnref.successors.t2i_adapter import adapted, adapted_unet, adapter_for

from conftest import refuses


def sd_layout_unet() -> UNet2DConditionModel:
    """A tiny UNet with SD1.5's block layout: three cross-attention levels, then a plain one without downsampler."""
    torch.manual_seed(0)
    return UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=2,
                                block_out_channels=(8, 16, 16, 16), norm_num_groups=4, cross_attention_dim=8,
                                attention_head_dim=2,
                                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3).eval()


@torch.no_grad()
def test_injection_equals_diffusers_intrablock_residuals_on_sd_layout():
    unet = sd_layout_unet()
    adapter = adapter_for(unet, cond_channels=3, factor=2)
    z, t, c = torch.randn(2, 4, 16, 16), torch.tensor([10, 700]), torch.randn(2, 5, 8)
    feats = adapter(torch.rand(2, 3, 32, 32))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]
    ours = adapted_unet(unet, z, t, c, feats)
    theirs = unet(z, t, c, down_intrablock_additional_residuals=[f.clone() for f in feats]).sample
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert (ours - unet(z, t, c).sample).abs().max() > 1e-3           # the features did act


def level_features(unet, z, t, c) -> list[torch.Tensor]:
    """Each encoder level's output before its downsampler (the last skip the level keeps before it)."""
    seen = []

    def keep(block):
        return lambda m, args, out: seen.append(out[1][-2] if block.downsamplers is not None else out[1][-1])
    handles = [b.register_forward_hook(keep(b)) for b in unet.down_blocks]
    try:
        unet(z, t, c)
    finally:
        for h in handles:
            h.remove()
    return seen


@torch.no_grad()
def test_injection_on_the_cpu_base_adds_each_level_before_its_downsampler():
    """On the cpu base (plain levels first) level 0's output is the plain one plus the adapter's features (nothing
    upstream of it changed), every level gets features of its own size, and the hooks end with the call."""
    unet = load_base("cpu").unet
    adapter = adapter_for(unet)
    z, t, c = torch.randn(2, 3, 32, 32), torch.tensor([5, 900]), torch.randn(2, 16, 32)
    feats = adapter(torch.rand(2, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 32, 32), (32, 16, 16), (64, 8, 8), (64, 4, 4)]
    plain = level_features(unet, z, t, c)
    with adapted(unet, feats):
        injected = level_features(unet, z, t, c)
    torch.testing.assert_close(injected[0], plain[0] + feats[0], rtol=1e-5, atol=1e-5)
    assert all(a.shape == f.shape for a, f in zip(injected, feats))
    after = level_features(unet, z, t, c)
    assert all(torch.equal(a, p) for a, p in zip(after, plain))


@torch.no_grad()
@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_features_at_level_k_change_level_k_by_exactly_themselves_and_nothing_before(k):
    """Features given at one level only: every level before it keeps its plain output, and level k's output is the
    plain one plus the features (added after the level's last layer, before its downsampler)."""
    unet = load_base("cpu").unet
    z, t, c = torch.randn(2, 3, 32, 32), torch.tensor([5, 900]), torch.randn(2, 16, 32)
    plain = level_features(unet, z, t, c)
    feats = [torch.randn_like(p) if i == k else torch.zeros_like(p) for i, p in enumerate(plain)]
    with adapted(unet, feats):
        injected = level_features(unet, z, t, c)
    for j in range(k):
        assert torch.equal(injected[j], plain[j]), j
    torch.testing.assert_close(injected[k], plain[k] + feats[k], rtol=1e-5, atol=1e-5)


def test_the_adapter_is_diffusers_full_adapter_at_the_unets_widths_and_refuses_misfit_features():
    """T2I-Adapter's full adapter (two residual blocks a stage, the paper's setting, and diffusers' default): the
    UNet's level widths, pixel-unshuffle by the condition's factor; features must be one per level, each of z_t's
    batch."""
    unet = load_base("smoke").unet
    a = adapter_for(unet, cond_channels=1, factor=2).config
    assert (a.in_channels, list(a.channels), a.num_res_blocks, a.downscale_factor, a.adapter_type) == \
        (1, list(unet.config.block_out_channels), 2, 2, "full_adapter")
    s = unet.config.sample_size
    feats = adapter_for(unet)(torch.rand(2, 3, s, s))
    with pytest.raises(ValueError, match=r"^`features`: expected 4 tensors \(one per encoder level\), received 3$"):
        with adapted(unet, feats[:3]):
            pass
    z, t, c = torch.randn(1, 3, s, s), torch.tensor([5]), torch.randn(1, 5, unet.config.cross_attention_dim)
    with pytest.raises(ValueError, match=r"^`features\[0\]`: expected batch 1 \(as z_t\), received batch 2$"):
        adapted_unet(unet, z, t, c, feats)


@torch.no_grad()
def test_the_adapters_eps_is_the_adapted_unet_from_the_condition_or_its_features():
    """eps(cond) adds the adapter's features of the condition, repeated to the batch; eps(features from `once`)
    adds those features as they are: one generation computes them once."""
    from cnref.successors.t2i_adapter import T2IAdapterConfig
    unet = load_base("cpu").unet
    torch.manual_seed(0)
    net = T2IAdapterConfig().build(unet)
    z, t, c = torch.randn(2, 3, 32, 32), torch.tensor([5, 900]), torch.randn(2, 16, 32)
    cond = torch.rand(1, 3, 32, 32)
    want = adapted_unet(unet, z, t, c, [f.repeat(2, 1, 1, 1) for f in net.adapter(cond)])
    torch.testing.assert_close(net.eps(unet, z, t, c, cond), want)
    torch.testing.assert_close(net.eps(unet, z, t, c, net.once(cond)), want)


def test_the_adapter_has_the_res_blocks_asked_for_and_refuses_non_integers():
    from cnref.successors.t2i_adapter import T2IAdapterConfig
    unet = load_base("cpu").unet
    blocks = lambda a: len([m for m in a.modules() if type(m).__name__ == "AdapterResnetBlock"])
    levels = len(unet.config.block_out_channels)
    assert blocks(adapter_for(unet)) == 2 * levels and blocks(adapter_for(unet, num_res_blocks=1)) == levels
    for kw, message in [({"factor": 1.5}, "`factor`: expected a positive integer, received 1.5"),
                        ({"cond_channels": 1.5}, "`cond_channels`: expected a positive integer, received 1.5")]:
        refuses(lambda: T2IAdapterConfig(**kw), message)


def test_each_levels_output_is_its_last_layer_whatever_the_layers_per_level():
    """Three layers per level (SD has two, where the second is also the last): a plain level's output is its third
    ResNet, a cross-attention level's its third attention."""
    from cnref.successors.t2i_adapter import level_outputs
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=3,
                                block_out_channels=(8, 8), norm_num_groups=4, cross_attention_dim=8,
                                attention_head_dim=2, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    first, plain = unet.down_blocks
    assert [id(m) for m in level_outputs(unet)] == [id(first.attentions[2]), id(plain.resnets[2])]
