"""Data stages that scale: hashed near-duplicate search, streamed audio bank (issue: VGGSound scale)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from marssep_core.config import CleanConfig
from marssep_core.data import cleaning
from marssep_core.data.audio_bank import _decode, build_audio_bank, load_audio_bank


def _fingerprints(rng: np.random.Generator, clips: int, frames: int) -> np.ndarray:
    """``(clips, frames, 32)`` random fingerprint bits, about half set, like real ones."""
    return rng.random((clips, frames, 32)) < 0.5


def _catalog(bits: list[np.ndarray]) -> pd.DataFrame:
    hexes = [np.packbits(b, axis=None).tobytes().hex() for b in bits]
    return pd.DataFrame({"clip_id": [f"c{i:04d}" for i in range(len(bits))], "row_order": np.arange(len(bits)),
                         "fingerprint": hexes, "fingerprint_frames": [b.shape[0] for b in bits]})


def test_hashed_search_finds_planted_copies_exactly_like_comparing_all_pairs():
    rng = np.random.default_rng(3)
    originals = list(_fingerprints(rng, 400, 40))
    clips, planted = list(originals), {}
    for k, flip in enumerate([0.0, 0.02, 0.05, 0.08, 0.1, 0.12] * 5):  # copies from identical to near the threshold
        source = int(rng.integers(len(originals)))
        copy = originals[source] ^ (rng.random(originals[source].shape) < flip)
        frames = int(rng.integers(34, 41))  # lengths within 20%: a re-encoded copy may lose a few frames
        planted[len(clips)] = source
        clips.append(copy[:frames])
    catalog = _catalog(clips).sample(frac=1.0, random_state=0)  # row order decides which one is kept
    everyone, cfg = pd.Series(True, index=catalog.index), CleanConfig()
    hashed = cleaning.near_duplicates(catalog, everyone, cfg)
    assert hashed.equals(cleaning.near_duplicates(catalog, everyone, cfg, exhaustive=True))
    for copy, source in planted.items():  # every planted pair is reported, one pointing at the other
        ids = {catalog.loc[copy, "clip_id"], catalog.loc[source, "clip_id"]}
        assert hashed[copy] in ids or hashed[source] in ids
    assert (hashed != "").sum() <= len(planted)  # unrelated random clips are never matched


def test_sparse_fingerprints_do_not_match_on_shared_zeros():
    rng = np.random.default_rng(1)
    sparse = [np.zeros((30, 32), dtype=bool) for _ in range(6)]
    for k, bits in enumerate(sparse):
        bits[:, k] = True  # each a different single band: same zeros everywhere else
    catalog = _catalog(sparse + list(_fingerprints(rng, 50, 30)))
    assert (cleaning.near_duplicates(catalog, pd.Series(True, index=catalog.index), CleanConfig()) == "").all()


@pytest.mark.parametrize("workers", [1, 2])
def test_streamed_bank_is_byte_for_byte_the_joined_array(tiny_raw, tmp_path, workers):
    metadata = pd.read_csv(tiny_raw / "metadata.csv", dtype=str, keep_default_na=False).head(9)
    clips = metadata.assign(split="train")
    bank = build_audio_bank(raw_dir=tiny_raw, clips=clips, out_dir=tmp_path / "bank", sample_rate=16000, max_seconds=0.7, workers=workers)
    ordered = clips.sort_values("clip_id")
    joined = np.concatenate([_decode((tiny_raw / rel, 16000, 0.7)) for rel in ordered["path"]])
    expected = io.BytesIO()
    np.save(expected, joined)
    assert (tmp_path / "bank" / "waves.npy").read_bytes() == expected.getvalue()
    reread = load_audio_bank(tmp_path / "bank")
    assert list(reread.index["clip_id"]) == list(ordered["clip_id"]) == list(bank.index["clip_id"])
    first = ordered["clip_id"].iloc[2]
    np.testing.assert_array_equal(reread.clip(first), _decode((tiny_raw / ordered["path"].iloc[2], 16000, 0.7)).astype(np.float32))


def test_an_empty_bank_is_a_valid_empty_array(tmp_path):
    clips = pd.DataFrame(columns=["clip_id", "path", "class", "corpus", "split", "origin"])
    bank = build_audio_bank(raw_dir=tmp_path, clips=clips, out_dir=tmp_path / "bank", sample_rate=16000, max_seconds=1.0, workers=1)
    assert bank.waves.shape == (0,) and len(bank.index) == 0


def test_label_filter_runs_on_an_import_whose_classes_are_smaller_than_the_folds():
    from marssep_core.config import LabelFilterConfig
    from marssep_core.data.label_filter import out_of_fold_rank

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 3)  # 3 clips per class, 5 folds asked for
    features = rng.standard_normal((30, 8)) + labels[:, None]
    ranks = out_of_fold_rank(features, labels, np.arange(30), LabelFilterConfig(folds=5))
    assert ranks.shape == (30,) and ranks.min() >= 1 and ranks.max() <= 10


def test_worker_processes_draw_the_batches_the_loop_draws(separator_assets):
    import torch

    from marssep_core.separation.data import MixingConfig, MixtureSampler
    from marssep_core.separation.queries import QueryBank
    from marssep_core.training.prefetch import BatchPrefetcher

    sampler = MixtureSampler(load_audio_bank(separator_assets.bank), QueryBank.load(separator_assets.queries), "train",
                             MixingConfig(crop_seconds=0.5, speed_range=0.1, tilt_range=0.5))
    with BatchPrefetcher(lambda rng, size: sampler.sample(size, rng), 3, seed=7, rank=1, steps=range(2, 9), workers=2, depth=3) as ahead:
        for step in range(2, 9):
            got, expected = ahead.batch(step), sampler.sample(3, np.random.default_rng([7, step, 1]))
            for name in ("mixture", "target", "interferer", "query"):
                torch.testing.assert_close(getattr(got, name), getattr(expected, name), rtol=0, atol=0)
            assert got.target_class == expected.target_class
        with pytest.raises(RuntimeError, match="step 3"):
            ahead.batch(3)  # out of order: refused, never a wrong batch


def test_training_with_data_workers_matches_training_without(separator_assets, tmp_path):
    import json

    from marssep_core.config import AudioConfig, build
    from marssep_core.separation.separator import load_separator
    from marssep_core.separation.stages import SupervisedConfig, run_supervised_stage
    from tests.conftest import TINY_SEPARATOR_PARAMS, supervised_paths

    a, outputs = separator_assets, {}
    for workers in (0, 2):
        params = json.loads(json.dumps(TINY_SEPARATOR_PARAMS))
        params["loop"].update(steps=4, eval_every=4, checkpoint_every=4, data_workers=workers)
        out = tmp_path / str(workers)
        run_supervised_stage(cfg=build(SupervisedConfig, params), audio=AudioConfig(),
                             paths=supervised_paths(a, out, metrics="sup.json", history="hist.csv"))
        outputs[workers] = (pd.read_csv(out / "hist.csv"), load_separator(out / "sep.pt")[0].state_dict())
    pd.testing.assert_frame_equal(outputs[0][0], outputs[2][0])
    for key, value in outputs[0][1].items():
        assert (value == outputs[2][1][key]).all(), key
