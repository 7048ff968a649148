"""Pairs, loss, checkpoints, the tracker and its adapters."""
import json

import cv2
import numpy as np
import pytest
import torch
from conftest import TRACKING, needs_shared

from backbones.checkpoint import CheckpointError, save_checkpoint
from backbones.cli import run_cli
from tracker.adapters import GotTracker, PytrackingTracker
from tracker.checkpoint import load_checkpoint
from tracker.loss import balanced_logistic_loss, response_labels
from tracker.model import build_siamfc
from tracker.pairs import SEARCH_SIZE, PairDataset
from tracker.sequences import Sequence, load_sequences
from tracker.siamfc import SiamFCTracker
from tracker.train import normalize


def tiny_model(mask="fp"):
    torch.manual_seed(0)
    return build_siamfc(mask, "resnet", 0.25)


def mask_of(model):
    from backbones.mask import Mask, with_budget

    b = model.backbone
    return with_budget(Mask(b.name, b.width, b.mask_states()))


def test_labels_and_balanced_loss():
    labels = response_labels(15, 8)
    assert labels.sum() == 13 and labels[7, 7] == 1 and labels[7, 9] == 1 and labels[7, 10] == 0
    logits = torch.zeros(2, 1, 15, 15)
    # All-zero logits: each half of the weight sees log(2).
    assert balanced_logistic_loss(logits, 8).item() == pytest.approx(np.log(2), rel=1e-5)
    good = (labels * 20 - 10).expand(2, 1, 15, 15)
    assert balanced_logistic_loss(good, 8).item() < 1e-3


@needs_shared
def test_pairs_are_deterministic_and_only_from_valid_frames():
    seqs = load_sequences(TRACKING, TRACKING / "splits" / "train.txt")
    data = PairDataset(seqs, seed=3)
    z, x = data[12]
    assert z.shape == (127, 127, 3) and x.shape == (SEARCH_SIZE, SEARCH_SIZE, 3) and z.dtype == torch.uint8
    z2, x2 = data[12]
    assert torch.equal(z, z2) and torch.equal(x, x2)
    group2 = next(s for s in seqs if s.name == "group2_2")
    rng = np.random.default_rng(0)
    only = PairDataset([group2])
    for _ in range(300):
        _, i, j = only.sample_frames(rng)
        assert group2.valid[i] and group2.valid[j] and abs(i - j) <= 100


@needs_shared
def test_flip_and_gray_act_on_both_patches_and_leave_the_crops_alone():
    seqs = load_sequences(TRACKING, TRACKING / "splits" / "train.txt")
    plain, aug = PairDataset(seqs, seed=5), PairDataset(seqs, seed=5, flip=True, gray=0.5)

    def variant(patch, flipped, gray):
        p = patch.numpy()[:, ::-1] if flipped else patch.numpy()
        return np.repeat(cv2.cvtColor(np.ascontiguousarray(p), cv2.COLOR_BGR2GRAY)[..., None], 3, 2) if gray else p

    kinds = set()
    for index in range(24):
        (z0, x0), (z, x) = plain[index], aug[index]
        matches = [(f, g) for f in (False, True) for g in (False, True)
                   if np.array_equal(z.numpy(), variant(z0, f, g)) and np.array_equal(x.numpy(), variant(x0, f, g))]
        assert matches  # the plain pair, mirrored and/or grayed in both patches alike
        if len(matches) == 1:  # (a gray source sequence looks the same grayed)
            kinds.add(matches[0])
    assert len(kinds) == 4  # all four combinations occur in 24 pairs


def test_pair_sampler_skips_invalid_frames(tmp_path):
    frames = [tmp_path / f"{i}.jpg" for i in range(6)]
    boxes = np.array([[0, 0, 5, 5]] * 6, dtype=float)
    boxes[[1, 3]] = np.nan
    data = PairDataset([Sequence("s", frames, boxes, "otb")])
    seen = {f for k in range(200) for f in data.sample_frames(np.random.default_rng(k))[1:]}
    assert seen == {0, 2, 4, 5}


@needs_shared
def test_short_training_lowers_loss_on_fixed_batch():
    seqs = load_sequences(TRACKING, TRACKING / "splits" / "train.txt")
    data = PairDataset(seqs, seed=0)
    z, x = (torch.stack(t) for t in zip(*[data[i] for i in range(4)], strict=True))
    model = tiny_model().train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    losses = []
    for _ in range(15):
        cpu = torch.device("cpu")
        logits = model(normalize(z, model.backbone, cpu), normalize(x, model.backbone, cpu))
        loss = balanced_logistic_loss(logits, model.backbone.total_stride)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_checkpoint_round_trip_identical_outputs(tmp_path):
    model = tiny_model("binary").eval()
    for unit in model.backbone.units().values():
        unit.bn_bin.running_mean.uniform_(-1, 1)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, mask_of(model), {"iterations": 0})
    loaded, meta = load_checkpoint(path)
    z, x = torch.randn(1, 3, 127, 127), torch.randn(1, 3, 255, 255)
    assert torch.equal(model(z, x), loaded(z, x))
    assert meta["mask"]["units"] == model.backbone.mask_states()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_checkpoint_errors(tmp_path):
    model = tiny_model()
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, mask_of(model), {"iterations": 0})
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(path.read_bytes()[:5000])
    (tmp_path / "t.json").write_text((tmp_path / "m.json").read_text())
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(truncated)
    side = json.loads((tmp_path / "m.json").read_text())
    first = next(iter(side["mask"]["units"]))
    side["mask"]["units"][first] = "binary"
    side["mask"].pop("budget")
    (tmp_path / "m.json").write_text(json.dumps(side))
    with pytest.raises(CheckpointError, match="does not match its weights"):
        load_checkpoint(path)
    side["mask"]["width"] = 0.5
    (tmp_path / "m.json").write_text(json.dumps(side))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.safetensors")


def moving_square(n=12, size=(160, 120)):
    """Frames of a textured square moving right, then leaving the frame."""
    rng = np.random.default_rng(0)
    patch = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
    frames = []
    for k in range(n):
        frame = np.full((size[1], size[0], 3), 90, np.uint8)
        x = 40 + 15 * k
        if x + 20 <= size[0]:
            frame[50:70, x:x + 20] = patch
        frames.append(frame)
    return frames


def test_tracker_survives_target_leaving_and_shrinking():
    tracker = SiamFCTracker(tiny_model())
    frames = moving_square(20)
    tracker.init(frames[0], [40, 50, 20, 20])
    for frame in frames[1:]:
        box = tracker.update(frame)
        assert box.shape == (4,) and np.all(np.isfinite(box)) and box[2] >= 2 and box[3] >= 2
        assert 0.0 <= tracker.confidence <= 1.0
    tracker.init(frames[0], [40, 50, 0.5, 0.5])  # a target of under a pixel
    for _ in range(10):
        box = tracker.update(np.zeros_like(frames[0]))
        assert np.all(np.isfinite(box)) and box[2] >= 2
    assert tracker.ops > 0 and tracker.budget == 1.0


@pytest.mark.parametrize("box", [[10, 10, 0, 5], [500, 10, 20, 20], [-50, 10, 20, 20]])
def test_tracker_rejects_bad_initial_box(box):
    with pytest.raises(ValueError, match="initial box"):
        SiamFCTracker(tiny_model()).init(moving_square(1)[0], box)


def test_adapters_follow_their_protocols():
    frames = moving_square(3)
    got = GotTracker(SiamFCTracker(tiny_model()), convention="otb")
    rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames]
    got.init(rgb[0], [41, 51, 20, 20])  # 1-based, as the toolkit reads OTB files
    assert np.all(np.isfinite(got.update(rgb[1])))
    assert got.tracker.center[0] > 40
    pyt = PytrackingTracker(SiamFCTracker(tiny_model()))
    assert pyt.initialize(rgb[0], {"init_bbox": [40, 50, 20, 20]}) == {}
    out = pyt.track(rgb[1], {})
    assert len(out["target_bbox"]) == 4 and 0 <= out["confidence"] <= 1


@needs_shared
def test_train_cli_errors(tmp_path, capsys):
    from tracker.train import main

    def err(argv):
        assert run_cli(main, argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    base = ["--backbone", "resnet", "--width", "0.25", "--iterations", "2", "--out", str(tmp_path / "run")]
    assert "/nonexistent" in err(base + ["--data", "/nonexistent"])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no tracking sequence found" in err(base + ["--data", str(empty)]).lower()
    bad = tmp_path / "bad" / "Seq"
    (bad / "img").mkdir(parents=True)
    for i in range(3):
        (bad / "img" / f"{i + 1:04d}.jpg").symlink_to(TRACKING / "otb" / "Crossing" / "img" / f"{i + 1:04d}.jpg")
    (bad / "groundtruth_rect.txt").write_text("1,2,3,4\n1,2,x,4\n1,2,3,4\n")
    line = err(base + ["--data", str(tmp_path / "bad")])
    assert "groundtruth_rect.txt:2: malformed annotation line" in line
    assert "vgg" in err(base[:1] + ["vgg"] + base[2:] + ["--data", str(TRACKING)])
    assert not (tmp_path / "run").exists()


def test_init_from_siamfc_pytorch_state_dict(tmp_path):
    from tracker.init import load_init

    torch.manual_seed(1)
    source = build_siamfc("fp", "alexnet")
    ours = source.backbone.state_dict()
    names = {"conv1": "conv1.0", "bn1": "conv1.1", "conv2.conv": "conv2.0", "conv2.bn_fp": "conv2.1",
             "conv3.conv": "conv3.0", "conv3.bn_fp": "conv3.1", "conv4.conv": "conv4.0",
             "conv4.bn_fp": "conv4.1", "conv5.conv": "conv5.0"}
    theirs = {}
    for key, tensor in ours.items():
        module, leaf = key.rsplit(".", 1)
        if module in names:
            theirs[f"backbone.{names[module]}.{leaf}"] = tensor.clone()
    torch.save(theirs, tmp_path / "siamfc_alexnet_e50.pth")
    target = build_siamfc("fp", "alexnet")
    assert load_init(target, tmp_path / "siamfc_alexnet_e50.pth") == len(theirs)
    source.eval()
    target.eval()
    z, x = torch.randn(1, 3, 127, 127), torch.randn(1, 3, 255, 255)
    assert torch.equal(source(z, x), target(z, x))
