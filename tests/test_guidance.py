"""Classifier-free guidance with control in both / the conditional branch / with resolution weights."""
import pytest
import torch

from cnref.paper.control import connection_scales, controlled_unet
from cnref.paper.controlnet import ControlNet
from cnref.paper.guidance import cfg, guided_eps

from conftest import inputs, randomize_zero_convs, tiny_unet


@pytest.fixture
def setup():
    unet = tiny_unet("cnref")
    net = ControlNet(unet)
    randomize_zero_convs(net)
    z_t, t, c_t, cond = inputs(unet, batch=2)
    c_uc = torch.randn_like(c_t)
    return unet, net.eval(), z_t, t, c_t, c_uc, cond


@pytest.mark.parametrize("beta", [1.0, 3.0, 7.5, 12.0])
def test_cfg_matches_diffusers_guider(beta):
    """cnref's CFG step against diffusers' own ClassifierFreeGuidance guider (the pipelines' formula)."""
    from diffusers.guiders import ClassifierFreeGuidance
    g = torch.Generator().manual_seed(0)
    uc, c = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    guider = ClassifierFreeGuidance(guidance_scale=beta)
    torch.testing.assert_close(cfg(uc, c, beta), guider.forward(c, uc).pred)


@torch.no_grad()
@pytest.mark.parametrize("mode", ["both", "cond_only", "cond_only_weighted", "cond_only_normalized"])
def test_modes_against_manual_branches(setup, mode):
    unet, net, z_t, t, c_t, c_uc, cond = setup
    beta = 5.0
    got = guided_eps(unet, [(net, cond)], z_t, t, c_t, c_uc, beta=beta, mode=mode)
    ctl_c = net(z_t, t, c_t, cond)
    if mode == "cond_only_weighted":           # the paper's w_i = 64 / h_i, written out from the sizes
        ctl_c = ctl_c.scaled(torch.tensor([max(ctl_c.sizes) / h for h in ctl_c.sizes]))
    if mode == "cond_only_normalized":         # the same, divided by its largest value
        ctl_c = ctl_c.scaled(torch.tensor([min(ctl_c.sizes) / h for h in ctl_c.sizes]))
    eps_c = controlled_unet(unet, z_t, t, c_t, ctl_c)
    ctl_uc = net(z_t, t, c_uc, cond) if mode == "both" else None
    eps_uc = controlled_unet(unet, z_t, t, c_uc, ctl_uc)
    assert (got - (eps_uc + beta * (eps_c - eps_uc))).abs().max() <= 1e-5


@torch.no_grad()
def test_modes_differ_and_beta_one_is_conditional(setup):
    unet, net, z_t, t, c_t, c_uc, cond = setup
    outs = {m: guided_eps(unet, [(net, cond)], z_t, t, c_t, c_uc, beta=5.0, mode=m)
            for m in ["both", "cond_only", "cond_only_weighted"]}
    assert (outs["both"] - outs["cond_only"]).abs().max() > 1e-4
    assert (outs["cond_only"] - outs["cond_only_weighted"]).abs().max() > 1e-4
    one = guided_eps(unet, [(net, cond)], z_t, t, c_t, c_uc, beta=1.0)
    assert torch.equal(one, controlled_unet(unet, z_t, t, c_t, net(z_t, t, c_t, cond)))


@torch.no_grad()
def test_beta_one_keeps_resolution_weighting(setup):
    """Regression: the single-branch shortcut at beta = 1 once dropped the weights w_i."""
    unet, net, z_t, t, c_t, c_uc, cond = setup
    got = guided_eps(unet, [(net, cond)], z_t, t, c_t, c_uc, beta=1.0, mode="cond_only_weighted")
    ctl = net(z_t, t, c_t, cond)
    want = controlled_unet(unet, z_t, t, c_t, ctl.scaled(connection_scales("resolution", sizes=ctl.sizes)))
    assert (got - want).abs().max() <= 1e-5
    assert (got - guided_eps(unet, [(net, cond)], z_t, t, c_t, c_uc, beta=1.0, mode="cond_only")).abs().max() > 1e-4


@torch.no_grad()
def test_guess_mode_scales_pass_through(setup):
    unet, net, z_t, t, c_t, c_uc, cond = setup
    w = connection_scales("guess_official")
    got = guided_eps(unet, [(net, cond)], z_t, t, c_uc, c_uc, beta=3.0, mode="cond_only", scales=w)
    eps_c = controlled_unet(unet, z_t, t, c_uc, net(z_t, t, c_uc, cond).scaled(w))
    eps_uc = unet(z_t, t, c_uc).sample
    assert (got - (eps_uc + 3.0 * (eps_c - eps_uc))).abs().max() <= 1e-5


def test_unknown_mode(setup):
    unet, net, z_t, t, c_t, c_uc, cond = setup
    with pytest.raises(ValueError, match="`mode`.*'sideways'"):
        guided_eps(unet, [(net, cond)], z_t, t, c_t, c_uc, mode="sideways")


@torch.no_grad()
def test_a_successor_under_cfg_is_cfg_of_its_two_branches_computed_apart():
    """A design without residuals (ControlNeXt here, its module randomised so that it acts) goes through CFG as
    eps_uc + beta (eps_c - eps_uc), each branch its own `eps` call; beta = 1 is the conditional branch alone."""
    from cnref.successors import design_config
    unet = tiny_unet("cnref")
    torch.manual_seed(3)
    net = design_config("controlnext").build(unet).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    z_t, t, c_t, cond = inputs(unet, batch=3)          # CFG's batch of 6 splits in two halves, whatever its size
    c_uc = torch.randn_like(c_t)
    eps_c, eps_uc = net.eps(unet, z_t, t, c_t, cond), net.eps(unet, z_t, t, c_uc, cond)
    assert (eps_c - eps_uc).abs().max() > 1e-3
    got = guided_eps(unet, [(net, cond)], z_t, t, c_t, c_uc, beta=4.0)
    torch.testing.assert_close(got, eps_uc + 4.0 * (eps_c - eps_uc), atol=1e-5, rtol=0)
    assert torch.equal(guided_eps(unet, [(net, cond)], z_t, t, c_t, c_uc, beta=1.0), eps_c)
    assert torch.equal(guided_eps(unet, [(net, cond)], z_t, t, c_t, None, beta=4.0), eps_c)


@pytest.mark.parametrize("kw, received", [({"mode": "cond_only"}, "1 controls, mode 'cond_only', scales None"),
                                          ({"scales": 2.0}, "1 controls, mode 'both', scales given")])
def test_a_successor_refuses_what_only_residuals_allow(kw, received):
    from cnref.successors import design_config
    unet = tiny_unet("cnref")
    net = design_config("controlnext").build(unet).eval()
    z_t, t, c_t, cond = inputs(unet, batch=2)
    with pytest.raises(ValueError) as e:
        guided_eps(unet, [(net, cond)], z_t, t, c_t, torch.randn_like(c_t), **kw)
    assert str(e.value) == ("`controlnets`: expected one successor of ControlNet, mode 'both', no per-connection "
                            f"scales, received {received}")


@torch.no_grad()
def test_one_branch_without_guidance_keeps_the_scales_and_needs_no_control(setup):
    """beta = 1 (or no unconditional embedding): eps_c alone, with the given per-connection scales applied; with no
    ControlNet at all, the plain UNet."""
    unet, net, z_t, t, c_t, c_uc, cond = setup
    w = connection_scales("guess_official")
    want = controlled_unet(unet, z_t, t, c_t, net(z_t, t, c_t, cond).scaled(w))
    torch.testing.assert_close(guided_eps(unet, [(net, cond)], z_t, t, c_t, None, scales=w), want)
    torch.testing.assert_close(guided_eps(unet, [], z_t, t, c_t, None), unet(z_t, t, c_t).sample)


@torch.no_grad()
def test_each_controlnet_takes_its_own_scales_and_beta_is_9_by_default(setup):
    """A list of scale vectors gives each ControlNet its own (section 3.4's multi-ControlNet sum, each scaled); the
    guidance scale defaults to the official sampler's 9."""
    unet, net, z_t, t, c_t, c_uc, cond = setup
    other = ControlNet(unet)
    randomize_zero_convs(other, seed=5)
    cond2 = torch.rand_like(cond)
    w1, w2 = connection_scales("guess_official"), connection_scales("uniform", strength=0.5)
    got = guided_eps(unet, [(net, cond), (other.eval(), cond2)], z_t, t, c_t, None, scales=[w1, w2])
    both = net(z_t, t, c_t, cond).scaled(w1) + other(z_t, t, c_t, cond2).scaled(w2)
    assert (got - controlled_unet(unet, z_t, t, c_t, both)).abs().max() <= 1e-5
    assert torch.equal(guided_eps(unet, [(net, cond)], z_t, t, c_t, c_uc),
                       guided_eps(unet, [(net, cond)], z_t, t, c_t, c_uc, beta=9.0))


@torch.no_grad()
def test_resolution_weighting_counts_the_connections_the_unet_has():
    """Two levels of two layers: 7 connections, not SD's 13; the weights w_i = h_max / h_i are taken over those."""
    from diffusers import UNet2DConditionModel
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
                                block_out_channels=(8, 8), norm_num_groups=4, cross_attention_dim=8,
                                attention_head_dim=2, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")).eval()
    net = ControlNet(unet)
    randomize_zero_convs(net)
    z_t, t, c_t, cond = inputs(unet)
    ctl = net.eval()(z_t, t, c_t, cond)
    assert len(ctl.residuals) == 7
    want = controlled_unet(unet, z_t, t, c_t, ctl.scaled(torch.tensor([max(ctl.sizes) / h for h in ctl.sizes])))
    got = guided_eps(unet, [(net, cond)], z_t, t, c_t, None, mode="cond_only_weighted")
    assert (got - want).abs().max() <= 1e-5


@torch.no_grad()
def test_cfg_without_a_control_and_scales_in_both_branches(setup):
    """No ControlNet: CFG of the plain UNet's two branches. Mode "both" with scales: each branch's residuals scaled.
    One timestep for the whole batch is that timestep on every row; and an odd batch."""
    unet, net, z_t, t, c_t, c_uc, cond = setup
    plain = lambda c: unet(z_t, t, c).sample
    torch.testing.assert_close(guided_eps(unet, [], z_t, t, c_t, c_uc, beta=5.0),
                               cfg(plain(c_uc), plain(c_t), 5.0), rtol=1e-5, atol=1e-5)
    w = connection_scales("guess_official")
    branch = lambda c: controlled_unet(unet, z_t, t, c, net(z_t, t, c, cond).scaled(w))
    torch.testing.assert_close(guided_eps(unet, [(net, cond)], z_t, t, c_t, c_uc, beta=5.0, mode="both", scales=w),
                               cfg(branch(c_uc), branch(c_t), 5.0), rtol=1e-5, atol=1e-5)
    one_t = guided_eps(unet, [(net, cond)], z_t, torch.tensor(500), c_t, c_uc, beta=5.0)   # one t for the batch
    assert torch.equal(one_t, guided_eps(unet, [(net, cond)], z_t, torch.full((2,), 500), c_t, c_uc, beta=5.0))
    z3, t3, c3, cond3 = inputs(unet, batch=3)            # an odd batch: the two halves of 6 rows, not thirds
    u3 = torch.randn_like(c3)
    branch3 = lambda c: controlled_unet(unet, z3, t3, c, net(z3, t3, c, cond3))
    torch.testing.assert_close(guided_eps(unet, [(net, cond3)], z3, t3, c3, u3, beta=5.0),
                               cfg(branch3(u3), branch3(c3), 5.0), rtol=1e-5, atol=1e-5)
