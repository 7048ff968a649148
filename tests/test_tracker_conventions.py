"""The tracker takes its stride and its input convention from the backbone, not from copies of its own."""
import numpy as np
import torch

from backbones.base import InputConfig
from tracker.model import build_siamfc
from tracker.ops import EXEMPLAR_SIZE, crop_and_resize
from tracker.siamfc import SiamFCTracker, TrackerConfig


def _model():
    torch.manual_seed(0)
    return build_siamfc("fp", "resnet", 0.25)


def _frame():
    return np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)


def test_tracker_reads_the_backbone_stride():
    model = _model()
    assert not hasattr(TrackerConfig(), "total_stride")
    tracker = SiamFCTracker(model)
    tracker.init(_frame(), [40, 50, 20, 20])
    assert tracker.stride == model.backbone.total_stride == 8
    assert tracker.upscale == 16 * ((255 - 127) // 8 + 1)
    model.backbone.total_stride = 4  # a backbone of another stride gets a response map to match
    tracker = SiamFCTracker(model)
    tracker.init(_frame(), [40, 50, 20, 20])
    assert tracker.upscale == 16 * ((255 - 127) // 4 + 1)


def test_tracker_feeds_the_backbone_its_own_input_convention():
    model = _model()
    seen = []
    embed = model.backbone.embed
    model.backbone.embed = lambda x: seen.append(x) or embed(x)
    frame = _frame()
    tracker = SiamFCTracker(model, kernels="float")  # the float path calls backbone.embed, seen here
    tracker.init(frame, [40, 50, 20, 20])
    z = crop_and_resize(frame, tracker.center, tracker.z_size, EXEMPLAR_SIZE, tracker.avg_color)
    bgr = torch.from_numpy(z).permute(2, 0, 1)[None].float()
    assert torch.equal(seen[0], (bgr - 127.5) / 64)
    model.backbone.input_config = InputConfig("RGB", (10.0, 20.0, 30.0), (2.0, 4.0, 8.0))
    tracker.init(frame, [40, 50, 20, 20])
    mean, std = torch.tensor([10.0, 20.0, 30.0]).view(3, 1, 1), torch.tensor([2.0, 4.0, 8.0]).view(3, 1, 1)
    assert torch.equal(seen[1], (bgr.flip(1) - mean) / std)
