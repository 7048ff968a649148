"""Curated crops form a GOT-10k-layout dataset whose exemplar regions are exactly the 255 crops' centres."""
import numpy as np
import pytest
from conftest import TRACKING, needs_shared

from backbones.cli import UsageError
from tracker.curate import curate
from tracker.ops import box_center, exemplar_size
from tracker.sequences import load_sequence, load_sequences


@needs_shared
def test_curated_group2_keeps_valid_frames_and_centres_targets(tmp_path):
    seq = load_sequence(TRACKING / "uav123" / "data_seq" / "UAV123_10fps" / "group2", TRACKING)[0]
    seq.frames, seq.boxes = seq.frames[160:190], seq.boxes[160:190]  # spans its 5 NaN rows
    assert curate([seq], tmp_path / "cur") == int(seq.valid.sum()) == 25
    (curated,) = load_sequences(tmp_path / "cur")
    assert curated.layout == "got10k" and len(curated.frames) == 25 and curated.valid.all()
    for box in curated.boxes:
        np.testing.assert_allclose(box_center(box), [127, 127], atol=1e-3)
        assert exemplar_size(box[2:]) == pytest.approx(127, abs=1e-2)
    with pytest.raises(UsageError, match="already exists"):
        curate([seq], tmp_path / "cur")
