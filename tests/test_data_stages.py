"""Stage tests on the tiny generated corpus: ingest, clean, bad input, leakage, duplicates."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from marssep_core.audio.io import save_audio
from marssep_core.audio.resample import resample
from marssep_core.config import LabelFilterConfig
from marssep_core.data import suites
from marssep_core.data.label_filter import label_consistency
from marssep_core.data.layout import read_metadata, write_layout
from marssep_core.data.stages import run_clean, run_ingest
from marssep_core.data.validation import ValidationFailed
from tests.conftest import SR, synth_clip


def _pipeline(raw: Path, tmp: Path, ingest_cfg, clean_cfg):
    catalog = run_ingest(raw, tmp / "catalog", ingest_cfg)
    return catalog, run_clean(raw_dir=raw, catalog=catalog, out_dir=tmp / "clean", metrics_path=tmp / "metrics.json", cfg=clean_cfg)


def _append_rows(raw: Path, rows: list[dict]) -> None:
    metadata = pd.concat([read_metadata(raw), pd.DataFrame(rows)], ignore_index=True)
    images = pd.read_csv(raw / "images.csv", dtype=str, keep_default_na=False)
    classes = pd.read_csv(raw / "classes.csv", keep_default_na=False)
    # write_layout sorts by clip_id; row order of metadata decides which duplicate is kept, so
    # name added rows to sort after the originals ("zz-").
    write_layout(raw, metadata, images, classes)


def _add_listed_clip(raw: Path, clip_id: str, label: str, wave: np.ndarray, rate: int, suffix: str = ".wav") -> None:
    """Write a clip into corpus "sounds" under class ``label`` and list it in metadata.csv."""
    rel = f"audio/sounds/{label}/{clip_id}{suffix}"
    save_audio(raw / rel, wave, rate, subtype="PCM_16")
    _append_rows(raw, [{"clip_id": clip_id, "path": rel, "class": label, "corpus": "sounds", "origin": f"other:{clip_id}"}])


def test_clean_keeps_every_clip_accounted_for(tiny_raw, tmp_path, ingest_cfg, clean_cfg):
    catalog, result = _pipeline(tiny_raw, tmp_path, ingest_cfg, clean_cfg)
    assert len(result.clean) + len(result.quarantine) == len(catalog) == 60
    assert set(result.clean["split"]) == {"train", "val", "test"}
    # no origin straddles two splits
    assert (result.clean.groupby("origin")["split"].nunique() == 1).all()
    for name in ("clips.parquet", "quarantine.parquet", "quarantine.csv", "test_pairs.csv", "validation.json"):
        assert (tmp_path / "clean" / name).is_file()
    assert result.metrics["kept_clips"] == len(result.clean)
    assert sum(result.metrics["quarantine_reason"].values()) == len(result.quarantine)


def test_test_pairs_follow_the_protocol(tiny_raw, tmp_path, ingest_cfg, clean_cfg):
    _, result = _pipeline(tiny_raw, tmp_path, ingest_cfg, clean_cfg)
    pairs, clean = result.pairs, result.clean.set_index("clip_id")
    assert pairs.groupby("corpus").size().to_dict() == {"inst": 12, "sounds": 12}
    assert (pairs["target_class"] != pairs["interferer_class"]).all()
    assert (pairs["query_audio_clip"] != pairs["target_clip"]).all()
    assert (clean.loc[pairs["target_clip"], "split"] == "test").all()
    assert (clean.loc[pairs["interferer_clip"], "split"] == "test").all()
    assert (clean.loc[pairs["query_audio_clip"], "class"].to_numpy() == pairs["target_class"].to_numpy()).all()
    assert pairs["snr_db"].between(-5, 5).all()
    assert (pairs["query_image"] != "").all()  # every tiny class has a picture
    # fixed: the same inputs give the same table
    _, again = _pipeline(tiny_raw, tmp_path / "again", ingest_cfg, clean_cfg)
    pd.testing.assert_frame_equal(pairs, again.pairs)


def test_test_crops_stay_inside_the_part_of_a_clip_the_audio_bank_keeps(tiny_raw, tmp_path, ingest_cfg, clean_cfg):
    # the tiny clips last 1 s; a bank that keeps 0.6 s of each leaves 0.1 s of room for 0.5 s crops
    catalog = run_ingest(tiny_raw, tmp_path / "catalog", ingest_cfg)
    result = run_clean(
        raw_dir=tiny_raw,
        catalog=catalog,
        out_dir=tmp_path / "clean",
        metrics_path=tmp_path / "metrics.json",
        cfg=clean_cfg,
        max_seconds=0.6,
    )
    offsets = result.pairs[["target_offset_s", "interferer_offset_s"]].to_numpy()
    assert offsets.max() <= 0.1 + 1e-9 and offsets.max() > 0
    unlimited = run_clean(
        raw_dir=tiny_raw, catalog=catalog, out_dir=tmp_path / "clean2", metrics_path=tmp_path / "metrics2.json", cfg=clean_cfg
    )
    assert unlimited.pairs["target_offset_s"].max() > 0.1
    with pytest.raises(ValidationFailed, match="crop_inside"):  # pairs drawn past the bank's end are refused
        suites.validate_test_pairs(unlimited.pairs, unlimited.clean, 12, max_seconds=0.6)


def test_bad_inputs_land_in_quarantine_with_their_reason(tiny_raw, tmp_path, ingest_cfg, clean_cfg):
    _, baseline = _pipeline(tiny_raw, tmp_path / "base", ingest_cfg, clean_cfg)
    folder = tiny_raw / "audio" / "sounds" / "tone"
    good = synth_clip("tone", 999)
    # truncated: a valid WAV cut in half
    save_audio(folder / "zz-truncated.wav", good, SR, subtype="PCM_16")
    data = (folder / "zz-truncated.wav").read_bytes()
    (folder / "zz-truncated.wav").write_bytes(data[: len(data) // 2])
    (folder / "zz-empty.wav").write_bytes(b"")
    sf.write(folder / "zz-nan.wav", np.full(SR, np.nan, dtype=np.float32), SR, subtype="FLOAT")
    surround = np.tile(resample(good, SR, 96000)[None, :], (6, 1))
    save_audio(folder / "zz-surround.wav", surround, 96000, subtype="PCM_24")
    (folder / "zz-text.wav").write_text("this is not audio\n" * 50)
    shutil.copyfile(tiny_raw / "audio/sounds/tone/tone-003.wav", folder / "zz-duplicate.wav")
    expected = {
        "zz-truncated": "truncated",
        "zz-empty": "empty_file",
        "zz-nan": "non_finite",
        "zz-surround": "too_many_channels",
        "zz-text": "decode_error",
        "zz-duplicate": "exact_duplicate",
    }
    _append_rows(
        tiny_raw,
        [
            {"clip_id": cid, "path": f"audio/sounds/tone/{cid}.wav", "class": "tone", "corpus": "sounds",
             "origin": f"bad:{cid}", "source_package": "test", "licence": "CC0"}
            for cid in expected
        ],
    )
    catalog, result = _pipeline(tiny_raw, tmp_path / "bad", ingest_cfg, clean_cfg)
    reasons = result.quarantine.set_index("clip_id")["reason"]
    for clip_id, reason in expected.items():
        assert reasons[clip_id] == reason, (clip_id, result.quarantine.set_index("clip_id").loc[clip_id].to_dict())
    detail = result.quarantine.set_index("clip_id")["detail"]
    assert "tone-003" in detail["zz-duplicate"]
    assert "zz-truncated" in detail["zz-truncated"]  # the message names the file
    # nothing else changed: same other quarantined clips, same kept clips
    others = set(reasons.index) - set(expected)
    assert others == set(baseline.quarantine["clip_id"])
    assert set(result.clean["clip_id"]) == set(baseline.clean["clip_id"])


def test_unlisted_audio_file_is_quarantined_as_unlabelled(tiny_raw, tmp_path, ingest_cfg, clean_cfg):
    save_audio(tiny_raw / "audio" / "sounds" / "stray.wav", synth_clip("noise", 4242), SR)
    _, result = _pipeline(tiny_raw, tmp_path, ingest_cfg, clean_cfg)
    row = result.quarantine.set_index("path").loc["audio/sounds/stray.wav"]
    assert row["reason"] == "unlabelled"


def test_near_duplicate_resampled_releveled_copy(tiny_raw, tmp_path, ingest_cfg, clean_cfg):
    original = synth_clip("chirp", 31)
    save_audio(tiny_raw / "audio/sounds/chirp/chirp-000.wav", original, SR, subtype="PCM_16")
    copy = 0.4 * resample(original, SR, 22050)  # other rate, other level, other container
    _add_listed_clip(raw=tiny_raw, clip_id="zz-copy", label="chirp", wave=copy, rate=22050, suffix=".flac")
    _, result = _pipeline(tiny_raw, tmp_path, ingest_cfg, clean_cfg)
    quarantine = result.quarantine.set_index("clip_id")
    assert quarantine.loc["zz-copy", "reason"] == "near_duplicate"
    assert "chirp-000" in quarantine.loc["zz-copy", "detail"]
    assert not (quarantine["reason"] == "near_duplicate").drop("zz-copy").any()


def test_mislabelled_clip_is_dropped_by_label_filter(tiny_raw, tmp_path, ingest_cfg, clean_cfg):
    _add_listed_clip(raw=tiny_raw, clip_id="zz-wrong", label="tone", wave=synth_clip("noise", 777), rate=SR)
    _, result = _pipeline(tiny_raw, tmp_path, ingest_cfg, clean_cfg)
    quarantine = result.quarantine.set_index("clip_id")
    assert quarantine.loc["zz-wrong", "reason"] == "label_inconsistent"
    # the filter may doubt an odd generated clip too, but never a sizeable share of real ones
    assert (quarantine["reason"] == "label_inconsistent").sum() <= 3


def test_leaked_origin_fails_validation_naming_it(tiny_raw, tmp_path, ingest_cfg, clean_cfg):
    _, result = _pipeline(tiny_raw, tmp_path, ingest_cfg, clean_cfg)
    clean = result.clean.copy()
    origin = clean["origin"].iloc[0]
    members = clean.index[clean["origin"] == origin]
    assert len(members) == 2
    clean.loc[members[0], "split"] = "train"
    clean.loc[members[1], "split"] = "test"
    with pytest.raises(ValidationFailed) as failure:
        suites.validate_splits(clean, result.quarantine, len(clean) + len(result.quarantine))
    assert origin in str(failure.value)
    assert "origins" in str(failure.value)


def test_unknown_clip_count_fails_accounting(tiny_raw, tmp_path, ingest_cfg, clean_cfg):
    _, result = _pipeline(tiny_raw, tmp_path, ingest_cfg, clean_cfg)
    with pytest.raises(ValidationFailed, match="accounting"):
        suites.validate_splits(result.clean, result.quarantine, len(result.clean) + len(result.quarantine) + 1)


def test_label_filter_never_takes_a_class_below_min_class_clips():
    """Class ``c`` has 12 clips, 5 of which sound like ``a``: the filter drops only its 2 most
    doubtful (12 -> 10 = min_class_clips), and all the doubtful ones when the floor is low."""
    rng = np.random.default_rng(0)
    centre = {"a": np.zeros(8), "b": np.full(8, 6.0), "c": np.full(8, -6.0)}
    rows = []
    for label in ("a", "b", "c"):
        for take in range(12):
            sounds_like = "a" if label == "c" and take < 5 else label
            rows.append({"clip_id": f"{label}{take}", "class": label, "corpus": "x", "origin": f"{label}{take}",
                         "features": centre[sounds_like] + rng.normal(0.0, 0.3, 8)})
    clips = pd.DataFrame(rows)
    doubtful = label_consistency(clips, LabelFilterConfig(folds=3, top_k=1, min_class_clips=2))
    in_c = clips["class"] == "c"
    assert doubtful.loc[in_c, "label_drop"].sum() >= 4
    floored = label_consistency(clips, LabelFilterConfig(folds=3, top_k=1, min_class_clips=10))
    assert floored.loc[in_c, "label_drop"].sum() == 2
    assert floored.loc[~in_c, "label_drop"].sum() <= doubtful.loc[~in_c, "label_drop"].sum()
    dropped_ranks = floored.loc[in_c & floored["label_drop"], "label_rank"]
    assert dropped_ranks.min() >= floored.loc[in_c & ~floored["label_drop"], "label_rank"].max()
