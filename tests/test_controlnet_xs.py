"""ControlNet-XS over the cpu base: the 4-channel lift is exact, the model is the base at initialisation (its
control -> base connections are zero convolutions), and only the control trains."""
import torch

from cnref.paper.controlnet import ControlNet
from cnref.successors.controlnet_xs import ControlNetXS, lift
from cnref.mini.shipping import load_base


@torch.no_grad()
def test_lift_is_the_same_unet_on_its_own_channels():
    unet = load_base("cpu").unet
    z, t, c = torch.randn(2, 3, 32, 32), torch.tensor([3, 800]), torch.randn(2, 16, 32)
    lifted = lift(unet)
    out = lifted(torch.cat([z, torch.zeros(2, 1, 32, 32)], 1), t, c).sample
    torch.testing.assert_close(out[:, :3], unet(z, t, c).sample, rtol=1e-5, atol=1e-5)
    assert torch.all(out[:, 3] == 0)


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
