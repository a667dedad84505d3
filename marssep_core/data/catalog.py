"""The ``ingest`` stage: one catalog row of audio facts per clip in ``data/raw``.

Every audio file under ``data/raw/audio`` is measured, listed in ``metadata.csv`` or not (unlisted
files get an empty class and are quarantined by ``clean`` as ``unlabelled``). Measuring never
raises on a bad file: the failure becomes the row's ``error``. This is the only pass that decodes
the whole corpus; ``clean`` works from the catalog (it decodes only the clips its test pairs draw,
to place their crops over sound).
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from marssep_core.audio.features import (
    effective_bandwidth,
    log_mel_stats,
    sounding_frames,
    spectral_fingerprint,
)
from marssep_core.audio.io import AudioDecodeError, load_audio, to_mono
from marssep_core.audio.resample import resample
from marssep_core.config import IngestConfig
from marssep_core.data.layout import read_metadata
from marssep_core.io_utils import md5_file

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au"}


@dataclass
class ClipFacts:
    """Measured facts of one file (``error`` non-empty when it could not be decoded)."""

    path: str
    file_bytes: int = 0
    file_md5: str = ""
    error: str = ""
    error_kind: str = ""  # "", or AudioDecodeError.kind (missing_file, empty_file, truncated, decode_error)
    sample_rate: int = 0
    channels: int = 0
    duration: float = 0.0
    non_finite: bool = False
    peak: float = 0.0
    rms_db: float = -120.0
    clipping_ratio: float = 0.0
    silent_ratio: float = 1.0
    bandwidth_hz: float = 0.0
    fingerprint: str = ""
    fingerprint_frames: int = 0
    features: list[float] = field(default_factory=list)


def measure_clip(raw_dir: Path, rel_path: str, cfg: IngestConfig) -> ClipFacts:
    """Measure one file; decoding problems are recorded, never raised."""
    path = raw_dir / rel_path
    facts = ClipFacts(path=rel_path)
    if path.is_file():
        facts.file_bytes = path.stat().st_size
        facts.file_md5 = md5_file(path)
    try:
        audio, rate = load_audio(path)
    except AudioDecodeError as err:
        facts.error, facts.error_kind = str(err).replace(str(raw_dir) + "/", ""), err.kind
        return facts
    facts.sample_rate, facts.channels = rate, audio.shape[0]
    facts.duration = audio.shape[1] / rate
    if not np.all(np.isfinite(audio)):
        facts.non_finite = True
        return facts
    mono = to_mono(audio)
    facts.peak = float(np.max(np.abs(audio)))
    facts.clipping_ratio = float(np.mean(np.abs(audio) >= cfg.clip_threshold))
    facts.bandwidth_hz = effective_bandwidth(mono, rate) if mono.size >= 64 else 0.0
    analysis = resample(mono, rate, cfg.analysis_sample_rate)
    facts.rms_db = float(10.0 * np.log10(np.mean(analysis.astype(np.float64) ** 2) + 1e-12))
    sounding = sounding_frames(analysis, max(1, int(cfg.frame_seconds * cfg.analysis_sample_rate)), cfg.silence_rel_db)
    facts.silent_ratio = float(np.mean(~sounding))
    facts.features = log_mel_stats(analysis, cfg.analysis_sample_rate).tolist()
    fp_wave = resample(mono, rate, cfg.fingerprint_sample_rate)
    bits = spectral_fingerprint(fp_wave, cfg.fingerprint_sample_rate, cfg.fingerprint_frames)
    facts.fingerprint_frames = int(bits.shape[0])
    facts.fingerprint = np.packbits(bits, axis=None).tobytes().hex() if bits.size else ""
    return facts


def _measure_star(args: tuple[Path, str, IngestConfig]) -> ClipFacts:
    return measure_clip(*args)


def discover(raw_dir: Path) -> pd.DataFrame:
    """``metadata.csv`` rows plus a row (empty class) for every unlisted audio file on disk."""
    metadata = read_metadata(raw_dir)
    listed = set(metadata["path"])
    on_disk = sorted(
        p.relative_to(raw_dir).as_posix()
        for p in (raw_dir / "audio").rglob("*")
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
    ) if (raw_dir / "audio").is_dir() else []
    extra = [p for p in on_disk if p not in listed]
    if extra:
        log.warning("%d audio file(s) under %s/audio are not in metadata.csv", len(extra), raw_dir)
    unlisted = pd.DataFrame(
        {"clip_id": ["unlisted-" + Path(p).stem for p in extra], "path": extra, "in_metadata": False}
    )
    metadata = metadata.assign(in_metadata=True)
    return pd.concat([metadata, unlisted], ignore_index=True).fillna("")


def build_catalog(raw_dir: Path, cfg: IngestConfig) -> pd.DataFrame:
    """Measure every clip (in ``cfg.workers`` processes) and join the facts to the metadata."""
    raw_dir = Path(raw_dir)
    rows = discover(raw_dir)
    args = [(raw_dir, rel, cfg) for rel in rows["path"]]
    if cfg.workers > 1 and len(args) > 1:
        with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
            facts = list(tqdm(pool.map(_measure_star, args, chunksize=8), total=len(args), desc="ingest", unit="clip"))
    else:
        facts = [measure_clip(*a) for a in tqdm(args, desc="ingest", unit="clip")]
    measured = pd.DataFrame([asdict(f) for f in facts]).drop(columns=["path"])
    catalog = pd.concat([rows.reset_index(drop=True), measured], axis=1)
    catalog["decodable"] = catalog["error_kind"] == ""
    catalog["md5_matches_metadata"] = (catalog["md5"] == "") | (catalog["md5"] == catalog["file_md5"])
    catalog["row_order"] = np.arange(len(catalog))
    return catalog
