"""Packed XNOR-popcount inference (docs/design.md section 7): exact integer sums on every kernel path, fused
runners equal to the float path, path forcing errors, and a teacher-forced tracker on a real sequence."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, TRACKING

from backbones import kernels
from backbones.kernels import KernelError, available_paths, resolve_path
from backbones.packed import PackedConv
from backbones.packed_embed import packed_embedder
from backbones.registry import build_backbone
from backbones.unit import SwitchableConv

PATHS = available_paths()


pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODELS = REPO / "models"

# (in, out, kernel, stride, groups, padding, size): odd channels, K tails, strides, groups, padding
CASES = [
    (33, 20, 3, 1, 1, 0, 9),
    (96, 40, 5, 1, 2, 2, 11),  # AlexNet conv2-like: 48 channels per group, K = 1200 (18.75 words)
    (130, 70, 3, 2, 1, 1, 12),  # 130 channels: 3 words with a 2-bit tail
    (7, 5, 3, 2, 1, 1, 8),
    (64, 64, 3, 2, 2, 1, 13),
    (128, 36, 3, 1, 1, 0, 7),
    (66, 34, 1, 1, 2, 0, 5),
]


def random_bn(bn: torch.nn.Module) -> None:
    """Non-trivial batch-norm statistics and affine parameters."""
    if isinstance(bn, torch.nn.BatchNorm2d):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.normal_()
        bn.bias.data.normal_()


def binary_unit(cin, cout, k, stride, groups, padding, norm=True) -> SwitchableConv:
    unit = SwitchableConv(cin, cout, k, stride=stride, groups=groups, norm=norm)
    unit.conv.padding = (padding, padding)
    if unit.conv.bias is not None:
        unit.conv.bias.data.normal_()
    random_bn(unit.bn_bin)
    unit.set_state("binary")
    return unit.eval()


def signs(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t >= 0, 1.0, -1.0).double()


def random_input(n, c, size) -> torch.Tensor:
    x = torch.randn(n, c, size, size)
    x[0, 0, 0, :3] = torch.tensor([0.0, -0.0, 0.0])  # sign(0) = sign(-0) = +1 on both paths
    return x


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_packed_unit_exact(path, case):
    cin, cout, k, stride, groups, padding, size = case
    unit = binary_unit(cin, cout, k, stride, groups, padding, norm=case != CASES[-1])
    x = random_input(2, cin, size)
    packed = PackedConv(unit)
    expected = F.conv2d(signs(x), signs(unit.conv.weight), stride=stride, padding=padding, groups=groups)
    dots = packed.dots(x, path, threads=2).permute(0, 3, 1, 2).double()
    assert torch.equal(dots, expected)
    with torch.no_grad():
        reference = unit(x)
    out = packed(x, path, threads=2)
    assert out.shape == reference.shape
    assert torch.equal(out, reference)  # same roundings as the float path (Epilogue), not just close


def test_paths_agree_bitwise_on_packing():
    x = random_input(2, 130, 6).contiguous(memory_format=torch.channels_last)
    ref = kernels.pack_torch(x, 2)
    for path in PATHS:
        packed = kernels.pack(x, 2, path, 1)
        assert packed.shape[-1] == kernels.packed_format(path, 65)[0], path
        assert torch.equal(kernels.as_words(packed, 65), ref), path


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[4], (32, 72, 3, 1, 1, 0, 9)],
                         ids=["groups", "tail", "padded-groups", "fast-72-channels"])
def test_epilogue_packs_its_output(path, case):
    """The epilogue's packed signs (for the next unit, any group count) are those of its float output."""
    cin, cout, k, stride, groups, padding, size = case
    packed = PackedConv(binary_unit(cin, cout, k, stride, groups, padding))
    x = random_input(2, cin, size)
    out_hw = packed.dots(x, "torch").shape[1:3]
    residual = torch.randn(2, cout, *out_hw).contiguous(memory_format=torch.channels_last)
    xp = packed.pack_input(x, path, 2)
    for pack_groups in (1, 2):
        out, signs = packed.run_packed(xp, tuple(x.shape[2:]), path, 2, residual, pack_groups)
        ref, _ = packed.run_packed(packed.pack_input(x, "torch", 1), tuple(x.shape[2:]), "torch", 1, residual)
        assert torch.equal(out, ref)
        assert torch.equal(kernels.as_words(signs, cout // pack_groups), kernels.pack_torch(ref, pack_groups))


@pytest.mark.parametrize("path", PATHS)
def test_bn_pack_is_torch_batch_norm(path):
    """The stem's fused batch norm + sign-packing rounds as torch's batch norm and packs as ``pack``."""
    from backbones.packed import bn_terms

    bn = torch.nn.BatchNorm2d(36).eval()
    random_bn(bn)
    x = random_input(2, 36, 9).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        reference = bn(x)
    out, signs = kernels.bn_pack(x, *bn_terms(bn, None, 36), 2, path, 2)
    assert torch.equal(out, reference)
    assert torch.equal(kernels.as_words(signs, 18), kernels.pack_torch(reference, 2))


def trained_like(name: str, width: float, states: dict[str, str] | str) -> torch.nn.Module:
    backbone = build_backbone(name, width)
    for m in backbone.modules():
        random_bn(m)
    names = list(backbone.units())
    backbone.set_mask(states if isinstance(states, dict) else {n: states for n in names})
    return backbone.eval()


def mixed(backbone_name: str, width: float) -> dict[str, str]:
    names = list(build_backbone(backbone_name, width).units())
    return {n: ("fp" if i % 3 == 1 else "binary") for i, n in enumerate(names)}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["resnet", "alexnet"])
def test_packed_backbone_matches_float(name, path):
    width = 0.5 if name == "resnet" else 0.25
    size = 127 if name == "resnet" else 103
    for states in ("binary", mixed(name, width), "fp"):
        # channels_last as the tracker runs it (the float convolutions then round the same way)
        backbone = trained_like(name, width, states).to(memory_format=torch.channels_last)
        x = torch.randn(2, 3, size, size).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            reference = backbone.embed(x)
            out = packed_embedder(backbone, path)(x)
        assert torch.equal(out, reference), (states, (out - reference).abs().max())


def test_packed_embedder_leaves_the_model_alone():
    backbone = trained_like("resnet", 0.25, "binary")
    before = copy.deepcopy(backbone.state_dict())
    packed_embedder(backbone, PATHS[0])(torch.randn(1, 3, 127, 127))
    assert backbone.mask_states() == {n: "binary" for n in backbone.units()}
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())


def test_forcing_a_path(monkeypatch):
    monkeypatch.setenv(kernels.ENV, "sse9")
    with pytest.raises(KernelError) as info:
        resolve_path()
    assert "sse9" in str(info.value) and "torch" in str(info.value) and "\n" not in str(info.value)
    missing = [p for p in kernels.PATHS if p not in PATHS]
    for name in missing:
        monkeypatch.setenv(kernels.ENV, name)
        with pytest.raises(KernelError, match="available: " + ", ".join(PATHS)):
            resolve_path()
    for name in PATHS:
        monkeypatch.setenv(kernels.ENV, name)
        assert resolve_path() == name


def test_fallback_without_extension(monkeypatch, capsys):
    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setattr(kernels, "_bitops", None)
    monkeypatch.setattr(kernels, "_warned", False)
    assert available_paths() == ["torch"]
    assert resolve_path() == "torch" and resolve_path() == "torch"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fallback" in err


def test_extension_is_built():
    """The package's own build compiled the C kernels (the fallback is for compiler-less machines)."""
    assert kernels._bitops is not None and PATHS[0] != "torch"


@pytest.mark.skipif(not (TRACKING / "vot" / "bag").is_dir(), reason="../shared/data/tracking/vot/bag absent")
def test_tracker_teacher_forced_on_real_sequence():
    import cv2

    from tracker.checkpoint import load_checkpoint
    from tracker.sequences import load_sequence
    from tracker.siamfc import SiamFCTracker

    model, _ = load_checkpoint(MODELS / "resnet_bmin.safetensors")
    seq = load_sequence(TRACKING / "vot" / "bag")[0]
    frames = [cv2.imread(str(f)) for f in seq.frames[:30]]
    reference = SiamFCTracker(copy.deepcopy(model), kernels="float")
    packed = SiamFCTracker(copy.deepcopy(model), kernels="packed")
    assert packed.kernel_path == PATHS[0]
    reference.init(frames[0], seq.boxes[0])
    packed.init(frames[0], seq.boxes[0])
    state = ("center", "target_size", "z_size", "x_size")
    worst = 0.0
    for frame in frames[1:]:
        for attr in state:
            value = getattr(reference, attr)
            setattr(packed, attr, value.copy() if isinstance(value, np.ndarray) else value)
        worst = max(worst, float(np.abs(packed.update(frame) - reference.update(frame)).max()))
    assert worst <= 0.01
