"""The general file helpers every stage writes through."""

from __future__ import annotations

import hashlib

from marssep_core.io_utils import replace_dir


def test_replace_dir_swaps_in_the_new_tree_and_cleans_up_an_interrupted_swap(tmp_path):
    dest = tmp_path / "out"
    (dest / "old-only").mkdir(parents=True)
    stale = tmp_path / f".out.old-{hashlib.md5(str(dest).encode()).hexdigest()[:8]}"
    (stale / "leftover").mkdir(parents=True)  # what a swap killed between its two renames leaves
    staging = tmp_path / "staging"
    (staging / "new").mkdir(parents=True)
    (staging / "new" / "file.txt").write_text("fresh")
    replace_dir(staging, dest)
    assert (dest / "new" / "file.txt").read_text() == "fresh"
    assert not (dest / "old-only").exists() and not staging.exists() and not stale.exists()
    fresh = tmp_path / "first"
    fresh.mkdir()
    replace_dir(fresh, tmp_path / "absent")  # nothing there yet: a plain rename
    assert (tmp_path / "absent").is_dir()
