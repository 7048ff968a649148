"""Switchable units, the backbone registry, embedding shapes, the input convention and the import graph."""
import ast
import graphlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from backbones.base import MAX_INPUT, MaskError
from backbones.cli import UsageError
from backbones.layers import BinaryConv2d
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


def _backbones_import_graph() -> dict[str, set[str]]:
    """{module: the backbones modules it imports anywhere, inside functions too} for backbones/*."""
    root = Path(__file__).resolve().parents[1] / "backbones"
    modules = {}
    for path in root.rglob("*.py"):
        parts = ("backbones",) + path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets.add(node.module)
                targets |= {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_backbones_import_graph_has_no_cycle():
    graph = _backbones_import_graph()
    assert {"backbones.registry", "backbones.mask", "backbones.cost", "backbones.cost.__main__"} <= set(graph)
    assert "backbones.mask" in graph["backbones.cost.__main__"]  # the edge that used to close a cycle
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError on any cycle


@pytest.mark.parametrize("name", ["alexnet", "resnet"])
def test_min_input_is_the_smallest_input_that_embeds(name):
    net = build_backbone(name, width=0.125).eval()
    with torch.no_grad():
        assert net.embed(torch.zeros(1, 3, net.min_input, net.min_input)).shape[-1] == 1
        with pytest.raises(RuntimeError):
            net.embed(torch.zeros(1, 3, net.min_input - 1, net.min_input - 1))
    net.check_input_size(net.min_input)
    for size in (net.min_input - 1, MAX_INPUT + 1, 10**6):
        with pytest.raises(UsageError, match=rf"range \[{net.min_input}, {MAX_INPUT}\]"):
            net.check_input_size(size)


@pytest.mark.parametrize("width", [0, -1, 1e6, float("inf"), float("nan")])
def test_absurd_widths_are_refused_before_allocating(width):
    with pytest.raises(UsageError, match=r"width must be in \(0, 4\]"):
        build_backbone("resnet", width)


def test_set_mask_validates_and_names_the_unit():
    net = build_backbone("alexnet", 0.25)
    with pytest.raises(MaskError, match="unknown unit.*fc9"):
        net.set_mask({n: "fp" for n in net.units()} | {"fc9": "fp"})
    with pytest.raises(MaskError, match="missing unit.*conv5"):
        net.set_mask({n: "fp" for n in net.units() if n != "conv5"})
    with pytest.raises(MaskError, match="conv3 has state 'half'"):
        net.set_mask({n: "half" if n == "conv3" else "fp" for n in net.units()})
    assert set(net.mask_states().values()) == {"fp"}  # a refused mask changes nothing
    net.set_mask({n: "binary" for n in net.units()})
    assert set(net.mask_states().values()) == {"binary"}


def test_units_run_the_larq_style_binary_conv():
    unit = SwitchableConv(4, 8, 3).eval()
    assert isinstance(unit.conv, BinaryConv2d)
    x = torch.randn(2, 4, 7, 7)
    w = unit.conv.weight
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    expected = F.conv2d(torch.where(x >= 0, 1.0, -1.0), alpha * torch.where(w >= 0, 1.0, -1.0))
    torch.testing.assert_close(unit.forward_binary(x), unit.bn_bin(expected))
    torch.testing.assert_close(unit.forward_fp(x), unit.bn_fp(F.conv2d(F.relu(x), w)))


def test_normalize_is_the_declared_convention():
    config = build_backbone("resnet", 0.25).input_config
    assert (config.color_order, config.mean, config.std) == ("BGR", (127.5,) * 3, (64.0,) * 3)
    pixels = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8)
    net = build_backbone("alexnet", 0.25)
    out = net.normalize(pixels)
    assert out.dtype == torch.float32 and torch.equal(out, (pixels.float() - 127.5) / 64)
    assert torch.equal(net.normalize(pixels.double()), out)
    assert torch.equal(config.reorder(pixels, "RGB"), pixels.flip(1))
    assert config.reorder(pixels, "BGR") is pixels
    with pytest.raises(ValueError, match="shape"):
        net.normalize(torch.zeros(2, 5, 5))
