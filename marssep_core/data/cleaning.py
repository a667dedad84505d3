"""Cleaning rules: every clip either passes or gets exactly one quarantine reason.

Rules run in a fixed order and the first that fires names the reason, so a zero-byte file is
``empty_file`` (not also ``too_short``). Duplicate detection runs only among clips that passed
the per-file rules, keeping the clip listed first in ``metadata.csv``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from marssep_core.audio.features import FINGERPRINT_BITS
from marssep_core.config import CleanConfig

# Order matters: the first rule that fires is the recorded reason.
FILE_RULES = (
    "unlabelled",
    "missing_file",
    "empty_file",
    "truncated",
    "decode_error",
    "non_finite",
    "too_many_channels",
    "low_sample_rate",
    "too_short",
    "silent",
    "mostly_silent",
    "clipped",
)
REASONS = (*FILE_RULES, "exact_duplicate", "near_duplicate", "label_inconsistent")


def file_rule_reasons(catalog: pd.DataFrame, cfg: CleanConfig, known_classes: set[str]) -> pd.DataFrame:
    """Per-clip ``reason`` and ``detail`` from the single-file rules (``""`` when a clip passes)."""
    checks: dict[str, tuple[pd.Series, pd.Series]] = {
        "unlabelled": (
            (catalog["class"] == "") | ~catalog["class"].isin(known_classes),
            "class '" + catalog["class"] + "' is not a known class (file not in metadata.csv?)",
        ),
        "missing_file": (catalog["error_kind"] == "missing_file", catalog["error"]),
        "empty_file": (catalog["error_kind"] == "empty_file", catalog["error"]),
        "truncated": (catalog["error_kind"] == "truncated", catalog["error"]),
        "decode_error": (catalog["error_kind"] == "decode_error", catalog["error"]),
        "non_finite": (catalog["non_finite"], pd.Series("samples contain NaN or inf", index=catalog.index)),
        "too_many_channels": (
            catalog["channels"] > cfg.max_channels,
            catalog["channels"].astype(str) + f" channels > {cfg.max_channels}",
        ),
        "low_sample_rate": (
            catalog["sample_rate"] < cfg.min_sample_rate,
            catalog["sample_rate"].astype(str) + f" Hz < {cfg.min_sample_rate} Hz",
        ),
        "too_short": (
            catalog["duration"] < cfg.min_seconds,
            catalog["duration"].round(3).astype(str) + f" s < {cfg.min_seconds} s",
        ),
        "silent": (catalog["peak"] < cfg.silent_peak, "peak " + catalog["peak"].map("{:.2e}".format)),
        "mostly_silent": (
            catalog["silent_ratio"] > cfg.max_silent_ratio,
            catalog["silent_ratio"].round(3).astype(str) + f" of frames silent > {cfg.max_silent_ratio}",
        ),
        "clipped": (
            catalog["clipping_ratio"] > cfg.max_clipping_ratio,
            catalog["clipping_ratio"].round(4).astype(str) + f" of samples clipped > {cfg.max_clipping_ratio}",
        ),
    }
    reason = pd.Series("", index=catalog.index, dtype=object)
    detail = pd.Series("", index=catalog.index, dtype=object)
    for name in FILE_RULES:
        fired, message = checks[name]
        fired = fired.fillna(False).astype(bool) & (reason == "")
        reason[fired] = name
        detail[fired] = message[fired] if isinstance(message, pd.Series) else message
    return pd.DataFrame({"reason": reason, "detail": detail})


def exact_duplicates(catalog: pd.DataFrame, candidates: pd.Series) -> pd.Series:
    """For each candidate clip whose bytes equal an earlier candidate's: that clip's id."""
    pool = catalog[candidates].sort_values("row_order")
    first = pool.groupby("file_md5")["clip_id"].transform("first")
    return first[first != pool["clip_id"]].reindex(catalog.index).fillna("")


# Candidate pairs for the near-duplicate search come from bit-sampling locality-sensitive hashing:
# each of LSH_BANDS keys is LSH_BITS_PER_BAND fingerprint bits drawn (seeded) from the first
# ``near_duplicate_min_frames`` frames, which every compared clip has. Two clips whose bits there
# agree with probability p share a key in at least one band with probability 1 - (1 - p^24)^512.
# A pair whose bits agree with probability 0.82 is caught with probability 0.98, unrelated clips
# (about half their bits agree) with ~3e-5. On 150 planted copies of default-corpus clips (resampled,
# re-levelled, re-encoded to Ogg; ``benchmarks/bench_scale.py``, ``planted_copies``) it finds exactly
# what comparing all pairs finds. Each candidate pair is then checked with the exact distance, so
# hashing can miss a duplicate (very rarely) but never invent one.
LSH_BANDS = 512
LSH_BITS_PER_BAND = 24
LSH_SEED = 20260


def near_duplicates(catalog: pd.DataFrame, candidates: pd.Series, cfg: CleanConfig, exhaustive: bool = False) -> pd.Series:
    """For each candidate that repeats an earlier candidate's audio: that clip's id.

    Two clips are near duplicates when the Jaccard distance of their spectral fingerprints (see
    ``marssep_core.audio.features.spectral_fingerprint``) over their common frames is at most
    ``cfg.near_duplicate_max_distance`` and their fingerprint lengths differ by at most 20%:
    a re-encoded, resampled or re-levelled copy. Measured on generated clips: copies 0.03-0.22,
    different clips of one class >= 0.47. Clips are visited in ``row_order``; a clip already found
    to repeat another is not a reference for later ones. Only pairs that share an LSH key (above)
    are compared, so the cost grows with the clips plus the candidate pairs, not with all pairs;
    ``exhaustive`` compares every pair instead (quadratic: the reference the hashing is checked
    against in ``benchmarks/bench_scale.py``).
    """
    pool = catalog[candidates & (catalog["fingerprint_frames"] >= cfg.near_duplicate_min_frames)]
    pool = pool.sort_values("row_order")
    result = pd.Series("", index=catalog.index, dtype=object)
    if len(pool) < 2:
        return result
    frames = pool["fingerprint_frames"].to_numpy()
    words = _frame_words(pool["fingerprint"].tolist(), frames)
    if exhaustive:
        pairs = np.stack(np.triu_indices(len(pool), k=1), axis=1).astype(np.int64)
    else:
        pairs = _lsh_candidate_pairs(words[:, : cfg.near_duplicate_min_frames])
    ids = pool["clip_id"].to_numpy()
    index = pool.index.to_numpy()
    dropped = np.zeros(len(pool), dtype=bool)
    repeats = np.full(len(pool), "", dtype=object)
    starts = np.searchsorted(pairs[:, 0], np.arange(len(pool) + 1))
    for i in range(len(pool)):
        later = pairs[starts[i] : starts[i + 1], 1]
        if dropped[i] or later.size == 0:
            continue
        later = later[~dropped[later]]
        ratio = np.minimum(frames[later], frames[i]) / np.maximum(frames[later], frames[i])
        later = later[ratio >= 0.8]
        if later.size == 0:
            continue
        hits = later[_jaccard_distance(words, frames, i, later) <= cfg.near_duplicate_max_distance]
        dropped[hits] = True
        repeats[hits] = ids[i]
    result[index[dropped]] = repeats[dropped]
    return result


def _frame_words(fingerprints: list[str], frames: np.ndarray) -> np.ndarray:
    """``(clips, max frames)`` uint32, one word per fingerprint frame (its 32 bits), 0 past the end."""
    assert FINGERPRINT_BITS == 32, "one fingerprint frame per uint32 word"
    words = np.zeros((len(fingerprints), int(frames.max())), dtype=np.uint32)
    for row, (hexcode, count) in enumerate(zip(fingerprints, frames)):
        words[row, :count] = np.frombuffer(bytes.fromhex(hexcode), dtype=">u4", count=int(count))
    return words


def _jaccard_distance(words: np.ndarray, frames: np.ndarray, i: int, others: np.ndarray) -> np.ndarray:
    """Jaccard distance over set bits between clip ``i`` and each of ``others``, on their common
    frames. Zeros do not count as agreement: two sparse fingerprints (pure tones, beeps) share many
    zero bits without being the same sound."""
    width = int(frames[i])
    common = np.arange(width)[None, :] < np.minimum(frames[others], width)[:, None]  # (n, width)
    a, b = words[i, :width][None, :] * common, words[others, :width] * common
    differ = np.bitwise_count(a ^ b).sum(axis=1, dtype=np.int64)
    either = np.bitwise_count(a | b).sum(axis=1, dtype=np.int64)
    return differ / np.maximum(either, 1)


def _lsh_candidate_pairs(prefix_words: np.ndarray) -> np.ndarray:
    """Sorted unique ``(i, j)`` pairs, ``i < j``, of clips sharing at least one LSH key (see
    ``LSH_BANDS``); ``prefix_words (clips, frames)`` are the fingerprint frames keys draw from."""
    count, frames = prefix_words.shape
    # one contiguous row per fingerprint bit, so a key reads 24 rows instead of gathering 24
    # scattered columns from every clip's row (that gather stopped fitting in cache and made
    # 32,000 clips cost 9x 8,000)
    bit_rows = np.ascontiguousarray(np.unpackbits(prefix_words.astype(">u4").view(np.uint8).reshape(count, frames * 4), axis=1).T)
    rng = np.random.default_rng(LSH_SEED)
    weights = (1 << np.arange(LSH_BITS_PER_BAND, dtype=np.int64))
    found = []
    for _ in range(LSH_BANDS):
        positions = rng.choice(bit_rows.shape[0], size=LSH_BITS_PER_BAND, replace=False)
        keys = weights @ bit_rows[positions].astype(np.int64)
        order = np.argsort(keys, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(keys[order]) != 0])
        sizes = np.diff(np.r_[starts, count])
        for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):  # only shared keys make pairs
            group = np.sort(order[start : start + size])
            first, second = np.triu_indices(size, k=1)
            found.append(group[first] * count + group[second])
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(found))  # i * count + j with i < j, sorted by i then j
    return np.stack([codes // count, codes % count], axis=1)
