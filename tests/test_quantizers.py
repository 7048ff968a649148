"""Binary quantizers and the binary convolution."""
import pytest
import torch
import torch.nn.functional as F

from backbones.layers import BinaryConv2d
from backbones.quantizers import approx_sign, binarize_weight


def test_binary_conv_equals_explicit_sign_conv():
    conv = BinaryConv2d(6, 8, 3, padding=1, groups=2, bias=False)
    x = torch.randn(2, 6, 9, 9)
    x[0, 0, 0, 0] = 0.0  # sign(0) must be +1
    sign_x = torch.where(x >= 0, 1.0, -1.0)
    w = conv.weight
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    expected = F.conv2d(sign_x, alpha * torch.where(w >= 0, 1.0, -1.0), padding=1, groups=2)
    torch.testing.assert_close(conv(x), expected)


def test_approx_sign_gradient_at_chosen_points():
    x = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.25, 0.5, 0.999, 1.0, 2.0], requires_grad=True)
    approx_sign(x).sum().backward()
    # 2 - 2|x| inside (-1, 1), zero outside.
    expected = torch.tensor([0.0, 0.0, 1.0, 2.0, 1.5, 1.0, 0.002, 0.0, 0.0])
    torch.testing.assert_close(x.grad, expected, atol=1e-5, rtol=0)
    assert approx_sign(torch.tensor([0.0])).item() == 1.0


def test_weight_binarization_alpha_and_clipped_ste():
    w = torch.tensor([[[[0.5, -2.0]]], [[[0.1, 0.3]]]], requires_grad=True)
    wb = binarize_weight(w)
    torch.testing.assert_close(wb.detach(), torch.tensor([[[[1.25, -1.25]]], [[[0.2, 0.2]]]]))
    upstream = torch.zeros_like(wb)
    upstream[0, 0, 0, 1] = 1.0
    wb.backward(upstream)
    # -2.0 lies outside the clip range, so sign's gradient is zero there; only alpha = mean|W| passes one:
    # d(alpha * sign(w1)) / dw1 = sign(w1) * sign(w1) / 2 = 0.5.
    assert w.grad[0, 0, 0, 1].item() == 0.5
    assert w.grad[0, 0, 0, 0].item() == pytest.approx(-0.5)  # sign(w1) * d alpha / dw0 = -1 * 0.5
    assert w.grad[1].abs().sum().item() == 0.0
