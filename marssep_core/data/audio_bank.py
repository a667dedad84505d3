"""The audio bank: every clean clip decoded once to mono at the model sample rate.

Training stages read crops from one float16 array (memory-mapped) instead of decoding and
resampling files in every step. Layout of ``out_dir``: ``waves.npy`` (all clips end to end) and
``index.parquet`` (``clip_id, class, corpus, split, origin, offset, length``).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
from tqdm import tqdm

from marssep_core.audio.io import load_audio, to_mono
from marssep_core.audio.mixing import crop_or_pad
from marssep_core.audio.resample import resample
from marssep_core.io_utils import atomic_path, write_table_atomic

INDEX_COLUMNS = ["clip_id", "class", "corpus", "split", "origin", "offset", "length"]


@dataclass
class AudioBank:
    """Clips as ``(samples,)`` float32 views into one array; see ``build_audio_bank``."""

    waves: np.ndarray
    index: pd.DataFrame
    sample_rate: int

    def __post_init__(self) -> None:
        self._rows = {clip: row for row, clip in enumerate(self.index["clip_id"])}

    def clip(self, clip_id: str) -> np.ndarray:
        row = self.index.iloc[self._rows[clip_id]]
        return self.waves[int(row["offset"]) : int(row["offset"]) + int(row["length"])].astype(np.float32)

    def clip_audio(self, clip_id: str) -> tuple[np.ndarray, int]:
        """``(clip(clip_id), sample_rate)``: what the test-pair recipe reads to place crops."""
        return self.clip(clip_id), self.sample_rate

    def crop(self, clip_id: str, length: int, start: int) -> np.ndarray:
        """``length`` samples from ``start`` (zero-padded past the end)."""
        return crop_or_pad(self.clip(clip_id), length, start)

    def split(self, name: str) -> pd.DataFrame:
        return self.index[self.index["split"] == name]


def _decode(args: tuple[Path, int, float]) -> np.ndarray:
    path, rate, max_seconds = args
    audio, orig = load_audio(path, max_seconds=max_seconds)
    return resample(to_mono(audio), orig, rate).astype(np.float16)


def build_audio_bank(raw_dir: Path, clips: pd.DataFrame, out_dir: Path, sample_rate: int, max_seconds: float, workers: int = 2) -> AudioBank:
    """Decode every clip of ``clips`` (needs ``path`` relative to ``raw_dir``) into ``out_dir``.

    Clips are written to ``waves.npy`` as they are decoded (in ``clip_id`` order), so memory does not
    grow with the corpus: the ``.npy`` header is written for an empty array first and rewritten
    with the final length at the end (numpy pads headers so the length can grow in place). The
    file is byte for byte what ``np.save`` writes for the joined array."""
    clips = clips.sort_values("clip_id").reset_index(drop=True)
    args = [(raw_dir / rel, sample_rate, max_seconds) for rel in clips["path"]]
    lengths = np.zeros(len(args), dtype=np.int64)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "waves.npy") as tmp, open(tmp, "wb") as handle:
        header_size = _write_npy_header(handle, 0)
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            decoded = pool.map(_decode, args, chunksize=8)
            for row, wave in enumerate(tqdm(decoded, total=len(args), desc="audio bank", unit="clip")):
                handle.write(wave.astype("<f2", copy=False).tobytes())
                lengths[row] = wave.shape[0]
        handle.seek(0)
        if _write_npy_header(handle, int(lengths.sum())) != header_size:
            raise RuntimeError(f"{tmp}: the .npy header changed size; cannot finish the bank in place")
    offsets = np.cumsum(lengths) - lengths
    index = clips.reindex(columns=INDEX_COLUMNS[:5]).assign(offset=offsets, length=lengths)
    write_table_atomic(out_dir / "index.parquet", index)
    (out_dir / "sample_rate.txt").write_text(f"{sample_rate}\n")
    return load_audio_bank(out_dir)


def _write_npy_header(handle: BinaryIO, samples: int) -> int:
    """Write the ``.npy`` header of a ``(samples,)`` float16 array at the handle's position; returns its size."""
    start = handle.tell()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f2")), "fortran_order": False, "shape": (samples,)}
    np.lib.format.write_array_header_1_0(handle, header)
    return handle.tell() - start


def load_audio_bank(out_dir: Path) -> AudioBank:
    """Open a bank written by ``build_audio_bank`` (the waveform array is memory-mapped)."""
    waves = np.load(out_dir / "waves.npy", mmap_mode="r")
    index = pd.read_parquet(out_dir / "index.parquet")
    return AudioBank(waves, index, int((out_dir / "sample_rate.txt").read_text()))
