"""Bad inputs raise ValueError naming the argument, the expected and the received value."""
import pytest
import torch

from cnref.controlnet import ControlNet, ControlNetConfig
from cnref.hint import hint_encoder

from conftest import inputs, tiny_unet


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
    with pytest.raises(ValueError, match=r"`c_t`: expected batch size 2, received batch size 1"):
        _call(net_and_inputs, c_t=c_t[:1])
    with pytest.raises(ValueError, match=r"`t`: expected a scalar or 2 timesteps, received shape \(3,\)"):
        _call(net_and_inputs, t=torch.tensor([1, 2, 3]))


@pytest.mark.parametrize("kw,message", [
    (dict(hint="cannyish"), r"`hint`: expected one of \['official', 'paper'\], received 'cannyish'"),
    (dict(connections="some"), r"`connections`: expected one of \['full', 'mid_only'\], received 'some'"),
    (dict(init="xavier"), r"`init`: expected one of \['gaussian', 'zero'\], received 'xavier'"),
    (dict(factor=3), None),
    (dict(gaussian_std=-1.0), r"`gaussian_std`: expected a positive number, received -1.0"),
])
def test_bad_config(kw, message):
    if message is None:   # a factor that is not a power of two fails when the hint encoder is built
        with pytest.raises(ValueError, match=r"`factor`: expected a power of two <= 8, received 3"):
            ControlNet(tiny_unet("cnref"), ControlNetConfig(**kw))
        return
    with pytest.raises(ValueError, match=message):
        ControlNetConfig(**kw)


def test_bad_hint_encoder_arguments():
    with pytest.raises(ValueError, match=r"`hint`: expected one of .*received 'nope'"):
        hint_encoder("nope", 8, 8)
    with pytest.raises(ValueError, match=r"`factor`: expected a power of two <= 16, received 32"):
        hint_encoder("paper", 8, 32)


def test_training_precision_is_checked(tmp_path):
    from cnref.train import trainer_kwargs
    with pytest.raises(ValueError, match=r"`precision`.*bf16-mixed.*'16-mixed'"):
        trainer_kwargs(tmp_path, steps=1, ckpt_every=1, precision="16-mixed")


def test_controlnet_factor_must_match_the_runs_cond_factor():
    from cnref.controlnet import ControlNetConfig
    from cnref.train import ControlNetTrainConfig, ControlNetTraining
    cfg = ControlNetTrainConfig.preset_default("smoke", cond_factor=8, controlnet=ControlNetConfig(factor=1))
    with pytest.raises(ValueError, match=r"`controlnet.factor`: expected the run's cond_factor 8.*received 1"):
        ControlNetTraining(cfg)
