"""Bad inputs raise ValueError naming the argument, the expected and the received value."""
import pytest
import torch

from cnref.paper.controlnet import ControlNet, ControlNetConfig
from cnref.paper.hint import hint_encoder

from conftest import inputs, refuses, tiny_unet


@pytest.fixture(scope="module")
def net_and_inputs():
    unet = tiny_unet("cnref")
    return ControlNet(unet, ControlNetConfig(factor=2)), inputs(unet, factor=2)


def _call(net_and_inputs, **over):
    net, (z_t, t, c_t, cond) = net_and_inputs
    args = dict(z_t=z_t, t=t, c_t=c_t, cond=cond)
    args.update(over)
    with torch.no_grad():
        return net(**args)


CASES = {
    "wrong spatial size": (lambda c: c[:, :, :16, :16], r"`cond`: expected spatial size \(32, 32\), received \(16, 16\)"),
    "wrong channels": (lambda c: c[:, :1], r"`cond`: expected 3 channels, received 1 channels"),
    "batch mismatch": (lambda c: c[:1], r"`cond`: expected batch size 2, received batch size 1"),
    "integer dtype": (lambda c: (c * 255).to(torch.uint8), r"`cond`: expected a floating-point tensor, received dtype torch.uint8"),
    "nan": (lambda c: c.index_put((torch.tensor([0]),), torch.tensor(float("nan"))), r"`cond`: expected finite values, received NaN or inf"),
    "inf": (lambda c: c.index_put((torch.tensor([1]),), torch.tensor(float("inf"))), r"`cond`: expected finite values, received NaN or inf"),
    "3-d": (lambda c: c[0], r"`cond`: expected a 4-d tensor, received shape \(3, 32, 32\)"),
    "not a tensor": (lambda c: c.numpy(), r"`cond`: expected a torch.Tensor, received ndarray"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_condition(net_and_inputs, case):
    change, message = CASES[case]
    cond = net_and_inputs[1][3]
    with pytest.raises(ValueError, match=message):
        _call(net_and_inputs, cond=change(cond))


def test_bad_sample_and_text(net_and_inputs):
    z_t, _, c_t, _ = net_and_inputs[1]
    with pytest.raises(ValueError, match=r"`z_t`: expected 3 channels, received 4"):
        _call(net_and_inputs, z_t=torch.randn(2, 4, 16, 16))
    with pytest.raises(ValueError, match=r"^`z_t`: expected a 4-d tensor, received shape \(3, 16, 16\)$"):
        _call(net_and_inputs, z_t=z_t[0])
    with pytest.raises(ValueError, match=r"^`c_t`: expected a 3-d tensor, received shape \(2, 5\)$"):
        _call(net_and_inputs, c_t=c_t[:, :, 0])
    with pytest.raises(ValueError, match=r"`c_t`: expected batch size 2, received batch size 1"):
        _call(net_and_inputs, c_t=c_t[:1])
    with pytest.raises(ValueError, match=r"`t`: expected a scalar or 2 timesteps, received shape \(3,\)"):
        _call(net_and_inputs, t=torch.tensor([1, 2, 3]))


@pytest.mark.parametrize("kw,message", [
    (dict(hint="cannyish"), r"`hint`: expected one of \['official', 'paper'\], received 'cannyish'"),
    (dict(connections="some"), r"`connections`: expected one of \['full', 'mid_only'\], received 'some'"),
    (dict(init="xavier"), r"`init`: expected one of \['gaussian', 'gaussian_z1', 'gaussian_z2', 'zero'\], received 'xavier'"),
    (dict(factor=3), r"`factor`: expected a power of two <= 8 \(the official hint encoder's stride-2 stages\), "
                     r"received 3"),
    (dict(factor=16), r"`factor`: expected a power of two <= 8"),
    (dict(hint="paper", factor=12), r"`factor`: expected a power of two <= 16"),
    (dict(gaussian_std=-1.0), r"`gaussian_std`: expected a positive number, received -1.0"),
])
def test_bad_config(kw, message):
    with pytest.raises(ValueError, match=message):
        ControlNetConfig(**kw)


def test_bad_hint_encoder_arguments():
    with pytest.raises(ValueError, match=r"`hint`: expected one of .*received 'nope'"):
        hint_encoder("nope", 8, 8)
    with pytest.raises(ValueError, match=r"`factor`: expected a power of two <= 16, received 32"):
        hint_encoder("paper", 8, 32)


def test_training_precision_is_checked(tmp_path):
    from cnref.mini.engine import trainer_kwargs
    with pytest.raises(ValueError, match=r"`precision`.*bf16-mixed.*'16-mixed'"):
        trainer_kwargs(tmp_path, steps=1, ckpt_every=1, precision="16-mixed")


@pytest.mark.parametrize("t,message", [
    (torch.tensor([3, 1000]), r"`t`: expected timesteps in \[0, 1000\), received 1000"),
    (torch.tensor([-1, 5]), r"`t`: expected timesteps in \[0, 1000\), received -1"),
    (torch.tensor([float("nan"), 5.0]), r"`t`: expected timesteps in \[0, 1000\), received nan"),
    (torch.tensor([True, False]), r"`t`: expected integer or float timesteps, received dtype torch.bool"),
])
def test_bad_timesteps(net_and_inputs, t, message):
    with pytest.raises(ValueError, match=message):
        _call(net_and_inputs, t=t)


def test_dtype_width_and_empty_batch_are_named(net_and_inputs):
    z_t, t, c_t, cond = net_and_inputs[1]
    with pytest.raises(ValueError, match=r"`z_t`: expected dtype torch.float32 \(the model's; or run under "
                                         r"torch.autocast\), received dtype torch.float64"):
        _call(net_and_inputs, z_t=z_t.double())
    with pytest.raises(ValueError, match=r"`cond`: expected dtype torch.float32.*received dtype torch.float16"):
        _call(net_and_inputs, cond=cond.half())
    with pytest.raises(ValueError, match=r"`c_t`: expected text embeddings of width 16 \(the UNet's "
                                         r"cross_attention_dim\), received width 7"):
        _call(net_and_inputs, c_t=torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match=r"`z_t`: expected a batch of at least one sample, received an empty batch"):
        _call(net_and_inputs, z_t=z_t[:0], t=t[:0], c_t=c_t[:0], cond=cond[:0])
    with torch.autocast("cpu", dtype=torch.bfloat16):     # mixed precision: float32 inputs are what it takes
        _call(net_and_inputs, z_t=z_t.bfloat16(), cond=cond.bfloat16(), c_t=c_t.bfloat16())


def test_value_checks_can_be_switched_off():
    """On a GPU a value check is a host sync per call: off there by default, and switchable anywhere."""
    from cnref.checks import looks_at_values, value_checks
    x = torch.tensor([float("nan")])
    assert looks_at_values(x)
    try:
        value_checks(False)
        assert not looks_at_values(x)
        value_checks(True)
        assert looks_at_values(x)
    finally:
        value_checks(None)


def test_unets_with_extra_conditioning_are_refused():
    """SDXL-style added embeddings (or class labels) would be silently missing from the residuals."""
    from diffusers import UNet2DConditionModel
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
                                cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4,
                                class_embed_type="timestep")
    with pytest.raises(ValueError, match=r"`unet`: expected a UNet conditioned on t and text only .*class_embed_type"):
        ControlNet(unet, ControlNetConfig())


@pytest.fixture(scope="module")
def paper_core_refusals(net_and_inputs):
    """Each refusal of the paper core that the cases above do not reach: (call, its whole message)."""
    from torch import nn
    from cnref.paper.control import compose, connection_scales, controlled_unet
    from cnref.paper.controlnet import set_gradient_checkpointing
    from cnref.paper.guidance import guided_eps
    from cnref.paper.loss import eps_loss, sample_timesteps
    from cnref.paper.zero_conv import zero_conv_grads
    net, (z_t, t, c_t, cond) = net_and_inputs
    with torch.no_grad():
        control = net(z_t, t, c_t, cond)
    one = type(control)(tuple(r[:1] for r in control.down), control.mid[:1])
    unet = tiny_unet("cnref")
    return {
        "scale kind": (lambda: connection_scales("bogus"), "`kind`: expected one of ['guess_diffusers', "
                       "'guess_official', 'resolution', 'resolution_normalized', 'uniform'], received 'bogus'"),
        "timestep kind": (lambda: sample_timesteps(2, 1000, kind="bogus"),
                          "`kind`: expected one of ['cubic', 'curriculum', 'high_t', 'uniform'], received 'bogus'"),
        "timestep batch": (lambda: sample_timesteps(0, 1000), "`batch`: expected a positive integer, received 0"),
        "hint variant": (lambda: hint_encoder("bogus", 4, 1), "`hint`: expected one of ['official', 'paper'], "
                         "received 'bogus'"),
        "cond_channels": (lambda: ControlNetConfig(cond_channels=0),
                          "`cond_channels`: expected a positive integer, received 0"),
        "factor": (lambda: ControlNetConfig(factor=0), "`factor`: expected a positive integer, received 0"),
        "c_t dtype": (lambda: net(z_t, t, c_t.double(), cond), "`c_t`: expected dtype torch.float32 (the model's; or "
                      "run under torch.autocast), received dtype torch.float64"),
        "no controls": (lambda: compose([]), "`controls`: expected at least one Control, received an empty list"),
        "weights": (lambda: compose([control, control], [1.0]),
                    "`weights`: expected 2 weights (one per control), received 1"),
        "sizes": (lambda: connection_scales("resolution", sizes=[1, 2]),
                  "`sizes`: expected 13 connection sizes h_i, received [1, 2]"),
        "control batch": (lambda: controlled_unet(unet, z_t, t, c_t, one),
                          "`control`: expected residuals for batch 2, received batch 1"),
        "checkpointing": (lambda: set_gradient_checkpointing(nn.Linear(1, 1)),
                          "`module`: expected a module with diffusers blocks (attribute gradient_checkpointing), "
                          "received Linear"),
        "c_uc": (lambda: guided_eps(unet, [], z_t, t, c_t, c_t[:, :2], 2.0),
                 f"`c_uc`: expected shape {tuple(c_t.shape)} (as c_t), received {tuple(c_t[:, :2].shape)}"),
        "eps_pred": (lambda: eps_loss(torch.zeros(2, 3), torch.zeros(2, 4)),
                     "`eps_pred`: expected shape (2, 3) (the noise's), received shape (2, 4)"),
        "W": (lambda: zero_conv_grads(torch.zeros(1, 2, 4, 4), torch.zeros(3, 5), torch.zeros(1, 3, 4, 4)),
              "`W`: expected shape (3, 2) = (C_out, C_in), received (3, 5)"),
    }


@pytest.mark.parametrize("case", ["scale kind", "timestep kind", "timestep batch", "hint variant", "cond_channels",
                                  "factor", "c_t dtype", "no controls", "weights", "sizes", "control batch",
                                  "checkpointing", "c_uc", "eps_pred", "W"])
def test_paper_core_refusals_say_exactly_what_they_expected(paper_core_refusals, case):
    refuses(*paper_core_refusals[case])
