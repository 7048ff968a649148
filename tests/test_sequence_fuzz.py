"""Seeded mutation fuzz of the sequence readers on a few hundred trees (full fuzz: experiments/)."""
from __future__ import annotations

import pytest
from sequence_fuzz import DATA, run_case

TREES = 200
SEED = 16


@pytest.mark.skipif(not DATA.is_dir(), reason=f"real tracking data absent: {DATA}")
def test_readers_survive_mutation_fuzz(tmp_path):
    outcomes = [run_case(tmp_path / f"t{i}", SEED, i) for i in range(TREES)]
    fails = [o.detail for o in outcomes if o.status == "FAIL"]
    assert not fails, (f"{len(fails)} of {TREES} trees failed; first: {fails[0]} "
                       f"(one case again: python experiments/fuzz_readers.py --seed {SEED} --tree N)")
    assert {o.status for o in outcomes} == {"ok", "error"}
    # Every kind of target was mutated: annotation rows, GOT-10k labels and list.txt, VOT sequence files,
    # split files and frames.
    kinds = {o.mutation.split(":")[0] for o in outcomes}
    assert kinds >= {"boxes", "labels", "list", "seqfile", "split", "frame"}, kinds
