"""Zero convolution: analytic gradients vs autograd, and the step-by-step gradient flow of Eq. 2."""
import pytest
import torch
from torch import nn

from cnref.paper.block import ControlledBlock
from cnref.paper.zero_conv import zero_conv, zero_conv_grads


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("zero", [True, False])
def test_analytic_gradients_match_autograd(seed, zero):
    g = torch.Generator().manual_seed(seed)
    n, c_in, c_out, h, w = (int(v) for v in torch.randint(2, 7, (5,), generator=g))
    z = zero_conv(c_in, c_out).double()
    if not zero:
        nn.init.normal_(z.weight), nn.init.normal_(z.bias)
    I = torch.randn(n, c_in, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    up = torch.randn(n, c_out, h, w, generator=g, dtype=torch.float64)   # dL/dZ
    (z(I) * up).sum().backward()
    dI, dW, dB = zero_conv_grads(I.detach(), z.weight.detach(), up)
    torch.testing.assert_close(dI, I.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dW, z.weight.grad.view(c_out, c_in), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dB, z.bias.grad, rtol=1e-12, atol=1e-12)
    if zero:   # at W = 0: dZ/dI = W = 0 while dZ/dW = I != 0 and dZ/dB = 1
        assert torch.count_nonzero(I.grad) == 0
        assert torch.count_nonzero(dW) == dW.numel() and torch.count_nonzero(dB) == dB.numel()


def test_zero_conv_outputs_zero():
    z = zero_conv(4, 6)
    assert torch.equal(z(torch.randn(3, 4, 5, 5)), torch.zeros(3, 6, 5, 5))


def _block():
    torch.manual_seed(0)
    f = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, 8, 3, padding=1))
    return ControlledBlock(f, in_channels=4, out_channels=8, cond_channels=3)


def test_eq2_identity_at_init():
    blk = _block()
    x, c = torch.randn(2, 4, 6, 6), torch.rand(2, 3, 6, 6)
    assert torch.equal(blk(x, c), blk.locked(x))          # y_c == y exactly


def _nonzero(params):
    return all(p.grad is not None and torch.count_nonzero(p.grad) > 0 for p in params)


def _zero(params):
    return all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in params)


def test_eq2_gradient_flow_step_by_step():
    blk = _block()
    opt = torch.optim.SGD([p for p in blk.parameters() if p.requires_grad], lr=0.1)
    x, c, target = torch.randn(2, 4, 6, 6), torch.rand(2, 3, 6, 6), torch.randn(2, 8, 6, 6)

    def step():
        opt.zero_grad(set_to_none=False)
        ((blk(x, c) - target) ** 2).mean().backward()

    step()   # step 1: only the output zero conv Z2 receives gradient
    assert _nonzero(blk.z2.parameters())
    assert _zero(blk.trainable.parameters()) and _zero(blk.z1.parameters())
    assert all(p.grad is None for p in blk.locked.parameters())
    opt.step()
    step()   # step 2: W2 != 0, so the trainable copy and Z1 receive gradient
    assert _nonzero(blk.trainable.parameters()) and _nonzero(blk.z1.parameters())
