"""The data stages as functions: ``run_ingest`` and ``run_clean`` (the DVC scripts call these).

Outputs (all written atomically):
- ingest: ``catalog.parquet``, ``catalog_validation.json``
- clean:  ``clips.parquet`` (kept clips with ``split``), ``quarantine.parquet`` and ``.csv``
  (every dropped clip with its reason), ``test_pairs.csv``, ``validation.json``, and the
  metrics file (counts per split/class/reason).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from marssep_core.audio.io import load_audio, to_mono
from marssep_core.config import CleanConfig, IngestConfig
from marssep_core.data import cleaning, suites
from marssep_core.data.catalog import build_catalog
from marssep_core.data.label_filter import label_consistency
from marssep_core.data.splits import SPLITS, assign_splits
from marssep_core.data.test_pairs import ClipAudio, make_test_pairs
from marssep_core.data.validation import ValidationFailed
from marssep_core.io_utils import write_json_atomic, write_table_atomic

log = logging.getLogger(__name__)

QUARANTINE_COLUMNS = ["clip_id", "path", "class", "corpus", "origin", "reason", "detail"]


def run_ingest(raw_dir: Path, out_dir: Path, cfg: IngestConfig) -> pd.DataFrame:
    """Measure every clip of ``raw_dir`` into ``out_dir/catalog.parquet`` after validating it."""
    catalog = build_catalog(raw_dir, cfg)
    report = _validate_or_write(lambda: suites.validate_catalog(catalog), out_dir / "catalog_validation.json")
    write_table_atomic(out_dir / "catalog.parquet", catalog)
    write_json_atomic(out_dir / "catalog_validation.json", report)
    return catalog


@dataclass
class CleanResult:
    clean: pd.DataFrame
    quarantine: pd.DataFrame
    pairs: pd.DataFrame
    metrics: dict[str, Any]


def run_clean(
    raw_dir: Path, catalog: pd.DataFrame, out_dir: Path, metrics_path: Path, cfg: CleanConfig, max_seconds: float | None = None
) -> CleanResult:
    """Quarantine bad clips, split the rest, draw the test pairs, validate, write everything.
    ``max_seconds``: how much of each clip the audio bank keeps (test crops stay inside it)."""
    classes = pd.read_csv(raw_dir / "classes.csv", dtype={"class": str}, keep_default_na=False)
    images_path = raw_dir / "images.csv"
    images = pd.read_csv(images_path, dtype=str, keep_default_na=False) if images_path.is_file() else pd.DataFrame(
        columns=["image_id", "class", "path"]
    )
    catalog = catalog.copy()
    verdict = cleaning.file_rule_reasons(catalog, cfg, set(classes["class"]))
    passed = verdict["reason"] == ""

    exact = cleaning.exact_duplicates(catalog, passed)
    _mark(verdict, exact, "exact_duplicate", "same bytes as {}")
    passed = verdict["reason"] == ""
    near = cleaning.near_duplicates(catalog, passed, cfg)
    _mark(verdict, near, "near_duplicate", "same audio as {} (fingerprint match)")
    passed = verdict["reason"] == ""

    consistency = label_consistency(catalog[passed], cfg.label_filter)
    catalog["label_rank"] = consistency["label_rank"].reindex(catalog.index)
    dropped = consistency.index[consistency["label_drop"]]
    verdict.loc[dropped, "reason"] = "label_inconsistent"
    verdict.loc[dropped, "detail"] = (
        "own label ranked " + consistency.loc[dropped, "label_rank"].astype(str) + f" > top {cfg.label_filter.top_k}"
        " by an out-of-fold classifier"
    )
    passed = verdict["reason"] == ""

    clean = catalog[passed].copy()
    clean["split"] = assign_splits(clean, cfg.split_fractions, cfg.split_seed)
    clean["flags"] = _flags(clean, cfg)
    # Index with the mask on both sides: assigning a Series to an empty frame would adopt its index.
    quarantine = pd.concat([catalog.loc[~passed], verdict.loc[~passed]], axis=1)[QUARANTINE_COLUMNS]
    pairs = make_test_pairs(clean, classes, images, cfg.test_pairs, audio=_raw_audio(raw_dir, clean, max_seconds),
                            max_seconds=max_seconds)

    report_path = out_dir / "validation.json"
    report = _validate_or_write(
        lambda: {
            "splits": suites.validate_splits(clean, quarantine, len(catalog)),
            "test_pairs": suites.validate_test_pairs(pairs, clean, cfg.test_pairs.pairs_per_corpus, max_seconds),
        },
        report_path,
    )
    metrics = data_metrics(catalog, clean, quarantine, pairs)
    write_table_atomic(out_dir / "clips.parquet", clean.drop(columns=["features"]))
    write_table_atomic(out_dir / "quarantine.parquet", quarantine)
    write_table_atomic(out_dir / "quarantine.csv", quarantine)
    write_table_atomic(out_dir / "test_pairs.csv", pairs)
    write_json_atomic(report_path, report)
    write_json_atomic(metrics_path, metrics)
    return CleanResult(clean, quarantine, pairs, metrics)


def _raw_audio(raw_dir: Path, clean: pd.DataFrame, max_seconds: float | None) -> ClipAudio:
    """Decode a kept clip from ``raw_dir`` as far as the audio bank keeps it (only the clips the
    test pairs draw are decoded)."""
    paths = clean.set_index("clip_id")["path"]

    def audio(clip_id: str) -> tuple[np.ndarray, int]:
        wave, rate = load_audio(raw_dir / paths[clip_id], max_seconds=max_seconds)
        return to_mono(wave), rate

    return audio


def _mark(verdict: pd.DataFrame, duplicate_of: pd.Series, reason: str, template: str) -> None:
    hit = duplicate_of != ""
    verdict.loc[hit, "reason"] = reason
    verdict.loc[hit, "detail"] = duplicate_of[hit].map(template.format)


def _flags(clean: pd.DataFrame, cfg: CleanConfig) -> pd.Series:
    """Kept-but-noted facts: band-limited recordings and files changed since the metadata."""
    flags = pd.Series("", index=clean.index, dtype=object)
    narrow = clean["bandwidth_hz"] < cfg.min_bandwidth_hz
    flags[narrow] = "band_limited"
    changed = ~clean["md5_matches_metadata"].astype(bool)
    flags[changed] = (flags[changed] + ";md5_changed").str.strip(";")
    return flags


def data_metrics(catalog: pd.DataFrame, clean: pd.DataFrame, quarantine: pd.DataFrame, pairs: pd.DataFrame) -> dict[str, Any]:
    """Counts per split, per corpus, per class and split, and per quarantine reason."""
    per_class = clean.groupby(["class", "split"]).size().unstack(fill_value=0)
    return {
        "catalog_clips": int(len(catalog)),
        "kept_clips": int(len(clean)),
        "quarantined_clips": int(len(quarantine)),
        "classes": int(clean["class"].nunique()),
        "split": {s: int((clean["split"] == s).sum()) for s in SPLITS},
        "corpus": {
            corpus: {s: int(((part["split"] == s)).sum()) for s in SPLITS}
            for corpus, part in clean.groupby("corpus")
        },
        "class_split": {
            label: {s: int(per_class.loc[label].get(s, 0)) for s in SPLITS} for label in sorted(per_class.index)
        },
        "quarantine_reason": {r: int((quarantine["reason"] == r).sum()) for r in cleaning.REASONS},
        "test_pairs": {corpus: int(n) for corpus, n in pairs.groupby("corpus").size().items()},
    }


def _validate_or_write(run: Any, report_path: Path) -> dict[str, Any]:
    """Run a validation; on failure keep its report on disk for the reader, then re-raise."""
    try:
        return run()
    except ValidationFailed as failure:
        write_json_atomic(report_path.with_name(report_path.stem + ".failed.json"), failure.report)
        log.error("%s", failure)
        raise
