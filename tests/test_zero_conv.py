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


def _bad(fn, *args, expected: str):
    """The call fails with the project's one-line error naming the argument and what was expected."""
    with pytest.raises(ValueError, match=expected):
        fn(*args)


def test_bad_inputs_name_the_argument_and_what_was_expected():
    I, W, g = torch.randn(2, 4, 5, 5), torch.randn(6, 4), torch.randn(2, 6, 5, 5)
    _bad(zero_conv_grads, I[0], W, g, expected=r"^`I`: expected a 4-d tensor, received shape \(4, 5, 5\)$")
    _bad(zero_conv_grads, I, W, g[0], expected=r"^`g`: expected a 4-d tensor")
    _bad(zero_conv_grads, I, W, g[:1], expected=r"^`g`: expected batch size 2, received batch size 1")
    _bad(zero_conv_grads, I, W, g[..., :4], expected=r"^`g`: expected spatial size \(5, 5\), received \(5, 4\)")
    _bad(zero_conv_grads, I, W[:, :3], g, expected=r"^`W`: expected shape \(6, 4\) = \(C_out, C_in\), received \(6, 3\)$")
    _bad(zero_conv, 0, expected=r"^`in_channels`: expected")
    _bad(zero_conv, 2.5, expected=r"^`in_channels`: expected")
    block = ControlledBlock(nn.Conv2d(4, 4, 3, padding=1), 4, 4, cond_channels=3)
    x, c = torch.randn(2, 4, 8, 8), torch.randn(2, 3, 8, 8)
    _bad(block, x[0], c, expected=r"^`x`: expected a 4-d tensor")
    _bad(block, x[:, :3], c, expected=r"^`x`: expected 4 channels, received 3 channels")
    _bad(block, x, c[0], expected=r"^`c`: expected a 4-d tensor")
    _bad(block, x, c[:1], expected=r"^`c`: expected batch size 2")
    _bad(block, x, c[:, :2], expected=r"^`c`: expected 3 channels")
    _bad(block, x, c[..., :4], expected=r"^`c`: expected spatial size \(8, 8\)")
    assert block(x, c).shape == x.shape        # and the good call goes through


def test_eq2_is_composed_as_written_once_the_zero_convs_have_moved():
    """With every zero conv random, the block's output is F(x; Θ) + Z2(F(x + Z1(c); Θc)) computed here from its
    parts (at initialisation both terms' signs are invisible: the control is zero)."""
    from cnref.paper.zero_conv import gaussian_
    torch.manual_seed(3)
    block = ControlledBlock(nn.Conv2d(4, 4, 3, padding=1), 4, 4, cond_channels=3)
    gaussian_(block.z1, 0.3), gaussian_(block.z2, 0.3)
    with torch.no_grad():
        block.trainable.weight.add_(0.1 * torch.randn_like(block.trainable.weight))   # the copy has trained
    x, c = torch.randn(2, 4, 8, 8), torch.randn(2, 3, 8, 8)
    by_hand = block.locked(x) + block.z2(block.trainable(x + block.z1(c)))
    assert torch.allclose(block(x, c), by_hand, atol=1e-6)
    assert not torch.allclose(block(x, c), block.locked(x), atol=1e-3)
    with pytest.raises(ValueError, match=r"^`std`: expected"):
        gaussian_(zero_conv(4), -0.1)
