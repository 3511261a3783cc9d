import pytest
import torch

torch.set_num_threads(2)


def tiny_unet(kind: str, seed: int = 0):
    """Two UNet configs: cnref's own smoke base, and SD1.5's block topology at tiny width."""
    torch.manual_seed(seed)
    if kind == "cnref":
        from cnref.mini.base import build_unet
        from cnref.mini.presets import preset
        return build_unet(preset("smoke").base).eval()
    if kind == "sd15":
        from cnref.mini.base import sd15_unet
        return sd15_unet(width=8, cross_attention_dim=16, sample_size=16, heads=2, norm_groups=4).eval()
    raise ValueError(kind)


@pytest.fixture(params=["cnref", "sd15"])
def unet(request):
    return tiny_unet(request.param)


def inputs(unet, batch=2, factor=1, seed=1):
    g = torch.Generator().manual_seed(seed)
    s = unet.config.sample_size
    z_t = torch.randn(batch, unet.config.in_channels, s, s, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    c_t = torch.randn(batch, 5, unet.config.cross_attention_dim, generator=g)
    cond = torch.rand(batch, 3, s * factor, s * factor, generator=g)
    return z_t, t, c_t, cond


def randomize_zero_convs(net, seed=2, std=0.1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for z in net.zero_convs():
            z.weight.copy_(torch.randn(z.weight.shape, generator=g) * std)
            z.bias.copy_(torch.randn(z.bias.shape, generator=g) * std)


def near(mask: torch.Tensor, px: int = 1) -> torch.Tensor:
    """Pixels within px (8-neighbourhood steps) of a True pixel of mask (B,1,H,W)."""
    return torch.nn.functional.max_pool2d(mask.float(), 2 * px + 1, stride=1, padding=px) > 0


def refuses(call, message: str) -> None:
    """`call()` raises ValueError, and its whole message is `message` (argument, expected, received, word for word)."""
    with pytest.raises(ValueError) as e:
        call()
    assert str(e.value) == message
