"""Switchable units, the backbone registry and embedding shapes."""
import pytest
import torch

from backbones.mask import build_masked_backbone
from backbones.registry import build_backbone, build_classifier, list_backbones
from backbones.unit import SwitchableConv


@pytest.mark.parametrize("name", ["alexnet", "resnet"])
def test_embed_total_stride_8(name):
    net = build_backbone(name, width=0.25).eval()
    z = net.embed(torch.randn(1, 3, 127, 127))
    x = net.embed(torch.randn(1, 3, 255, 255))
    assert net.total_stride == 8
    assert x.shape[-1] - z.shape[-1] == (255 - 127) // 8
    assert x.shape[1] == z.shape[1] == net.out_channels


def test_gate_one_and_zero_reproduce_fp_and_binary_exactly():
    unit = SwitchableConv(8, 16, 3).eval()
    for bn in (unit.bn_fp, unit.bn_bin):  # distinct statistics per path
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 8, 10, 10)
    fp, binary = unit.forward_fp(x), unit.forward_binary(x)
    assert not torch.allclose(fp, binary)
    unit.gate = torch.tensor(1.0)
    assert torch.equal(unit(x), fp)
    unit.gate = torch.tensor(0.0)
    assert torch.equal(unit(x), binary)
    unit.set_state("binary")
    assert unit.gate is None and torch.equal(unit(x), binary)


def test_binary_unit_sees_negative_inputs():
    """Units binarize pre-activations: a ReLU'd input would make sign() constant."""
    for name in list_backbones():
        net = build_masked_backbone("binary", name, 0.25).eval()
        seen: list[bool] = []

        def record(_module, inp, _out, seen=seen):
            seen.append(bool((inp[0] < 0).any()))

        hooks = [u.register_forward_hook(record) for u in net.units().values()]
        net.embed(torch.randn(1, 3, 127, 127))
        for h in hooks:
            h.remove()
        assert len(seen) == len(net.units()) and all(seen), name


def test_mask_sets_every_unit():
    net = build_masked_backbone("binary", "resnet")
    assert set(net.mask_states().values()) == {"binary"}
    assert len(net.units()) >= 8
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg")
    with pytest.raises(ValueError, match="width"):
        build_backbone("alexnet", width=0)


def test_classifier_head():
    model = build_classifier("resnet", num_classes=10, width=0.25)
    assert model(torch.randn(2, 3, 96, 96)).shape == (2, 10)
