"""The expectation suites themselves: what a valid catalog, split table and pair table are."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from marssep_core.data.cleaning import REASONS
from marssep_core.data.splits import SPLITS
from marssep_core.data.validation import TableCheck, validate_tables

ERROR_KINDS = ["", "missing_file", "empty_file", "truncated", "decode_error"]


def _gx() -> Any:
    import great_expectations as gx

    return gx.expectations


def validate_catalog(catalog: pd.DataFrame) -> dict[str, Any]:
    """Schema and ranges of the ingest catalog (bad clips are allowed: cleaning handles them)."""
    E = _gx()
    required = [
        "clip_id", "path", "class", "corpus", "origin", "decodable", "file_md5", "sample_rate", "channels", "duration",
        "rms_db", "peak", "clipping_ratio", "silent_ratio", "bandwidth_hz", "fingerprint",
    ]
    checks = [
        TableCheck(
            "catalog",
            catalog.drop(columns=["features"], errors="ignore"),
            [
                E.ExpectTableRowCountToBeBetween(min_value=1),
                *[E.ExpectColumnToExist(column=c) for c in required],
                E.ExpectColumnValuesToBeUnique(column="clip_id"),
                E.ExpectColumnValuesToBeUnique(column="path"),
                E.ExpectColumnValuesToNotBeNull(column="clip_id"),
                E.ExpectColumnValuesToBeInSet(column="error_kind", value_set=ERROR_KINDS),
                E.ExpectColumnValuesToBeBetween(column="duration", min_value=0, max_value=24 * 3600),
                E.ExpectColumnValuesToBeBetween(column="sample_rate", min_value=0, max_value=768000),
                E.ExpectColumnValuesToBeBetween(column="channels", min_value=0, max_value=256),
                E.ExpectColumnValuesToBeBetween(column="clipping_ratio", min_value=0, max_value=1),
                E.ExpectColumnValuesToBeBetween(column="silent_ratio", min_value=0, max_value=1),
                E.ExpectColumnValuesToBeBetween(column="file_bytes", min_value=0),
            ],
            key_columns=["clip_id"],
        )
    ]
    return validate_tables("catalog", checks)


def validate_splits(clean: pd.DataFrame, quarantine: pd.DataFrame, catalog_size: int) -> dict[str, Any]:
    """No leakage, no duplicates across splits, class coverage, and nothing silently lost."""
    E = _gx()
    origins = clean[["origin", "split"]].drop_duplicates()
    per_class = (
        clean.groupby(["class", "split"]).size().unstack(fill_value=0).reindex(columns=list(SPLITS), fill_value=0)
    )
    per_class["n_origins"] = clean.groupby("class")["origin"].nunique()
    per_class = per_class.reset_index()
    covered = per_class[per_class["n_origins"] >= len(SPLITS)]
    accounting = pd.DataFrame({"table": ["clean+quarantine"], "rows": [len(clean) + len(quarantine)]})
    checks = [
        TableCheck(
            "clips",
            clean.drop(columns=["features"], errors="ignore"),
            [
                E.ExpectColumnValuesToBeUnique(column="clip_id"),
                E.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
                E.ExpectColumnValuesToNotBeNull(column="class"),
                # identical audio bytes in two places would leak across splits
                E.ExpectColumnValuesToBeUnique(column="file_md5"),
            ],
            key_columns=["clip_id"],
        ),
        TableCheck(
            "origins",
            origins,
            [E.ExpectColumnValuesToBeUnique(column="origin")],  # one origin, one split
            key_columns=["origin", "split"],
        ),
        TableCheck(
            "class_coverage",
            per_class,
            [E.ExpectColumnValuesToBeBetween(column="train", min_value=1)],
            key_columns=["class"],
        ),
        TableCheck(
            "class_coverage_all_splits",
            covered,
            [E.ExpectColumnValuesToBeBetween(column=s, min_value=1) for s in SPLITS],
            key_columns=["class"],
        ),
        TableCheck(
            "quarantine",
            quarantine,
            [
                E.ExpectColumnValuesToBeInSet(column="reason", value_set=list(REASONS)),
                E.ExpectColumnValuesToNotBeNull(column="detail"),
            ],
            key_columns=["clip_id"],
        ),
        TableCheck(
            "accounting",
            accounting,
            [E.ExpectColumnValuesToBeBetween(column="rows", min_value=catalog_size, max_value=catalog_size)],
        ),
    ]
    return validate_tables("splits", checks)


def validate_test_pairs(pairs: pd.DataFrame, clean: pd.DataFrame, pairs_per_corpus: int, max_seconds: float | None = None) -> dict[str, Any]:
    """Targets and interferers from the test split, different classes, query never the target,
    crops that start inside the part of the clip the audio bank keeps."""
    E = _gx()
    split_of = clean.set_index("clip_id")["split"]
    usable = clean.set_index("clip_id")["duration"].clip(upper=max_seconds if max_seconds is not None else np.inf)

    def crop_inside(clip: str, offset: str) -> pd.Series:
        room = np.maximum(0.0, pairs[clip].map(usable) - pairs["crop_seconds"])
        return pairs[offset] <= room + 1e-3

    derived = pairs.assign(
        target_crop_inside=crop_inside("target_clip", "target_offset_s"),
        interferer_crop_inside=crop_inside("interferer_clip", "interferer_offset_s"),
        target_split=pairs["target_clip"].map(split_of),
        interferer_split=pairs["interferer_clip"].map(split_of),
        same_class=pairs["target_class"] == pairs["interferer_class"],
        query_is_target=pairs["query_audio_clip"] == pairs["target_clip"],
    )
    counts = pairs.groupby("corpus").size().rename("pairs").reset_index()
    checks = [
        TableCheck(
            "pairs",
            derived,
            [
                E.ExpectColumnValuesToBeUnique(column="pair_id"),
                E.ExpectColumnValuesToBeInSet(column="target_split", value_set=["test"]),
                E.ExpectColumnValuesToBeInSet(column="interferer_split", value_set=["test"]),
                E.ExpectColumnValuesToBeInSet(column="same_class", value_set=[False]),
                E.ExpectColumnValuesToBeInSet(column="query_is_target", value_set=[False]),
                E.ExpectColumnValuesToBeInSet(column="target_crop_inside", value_set=[True]),
                E.ExpectColumnValuesToBeInSet(column="interferer_crop_inside", value_set=[True]),
                E.ExpectColumnValuesToNotBeNull(column="query_audio_clip"),
                E.ExpectColumnValuesToBeBetween(column="snr_db", min_value=-40, max_value=40),
            ],
            key_columns=["pair_id"],
        ),
        TableCheck(
            "pair_counts",
            counts,
            [E.ExpectColumnValuesToBeBetween(column="pairs", min_value=pairs_per_corpus)],
            key_columns=["corpus"],
        ),
    ]
    return validate_tables("test_pairs", checks)
