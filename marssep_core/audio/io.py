"""Audio file I/O with soundfile (torchaudio does not import on CPU torch here).

Arrays are ``float32`` shaped ``(channels, samples)``. Every failure is an ``AudioDecodeError``
whose message names the file and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from marssep_core.io_utils import atomic_path


class AudioDecodeError(ValueError):
    """A file that cannot be read as audio; the message names the file and the reason.

    ``kind`` classifies the failure: ``missing_file``, ``empty_file``, ``truncated`` or
    ``decode_error``.
    """

    def __init__(self, message: str, kind: str = "decode_error"):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file (no decoding of the samples)."""

    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def probe_audio(path: str | Path) -> AudioInfo:
    """Read the header of ``path``; raise ``AudioDecodeError`` naming the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: file not found", "missing_file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: empty file (0 bytes)", "empty_file")
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError or TypeError
        raise AudioDecodeError(f"{path}: not decodable audio ({err})") from None
    if info.format == "WAV":
        _check_riff_complete(path)
    return AudioInfo(sample_rate=info.samplerate, channels=info.channels, frames=info.frames, format=info.format, subtype=info.subtype)


def _check_riff_complete(path: Path) -> None:
    """Raise if a WAV's ``data`` chunk declares more bytes than the file holds.

    libsndfile silently shortens such files to what is present, which would hide a truncated
    download or copy.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk = handle.read(8)
            chunk_id, chunk_size = chunk[:4], int.from_bytes(chunk[4:8], "little")
            if chunk_id == b"data":
                available = size - position - 8
                if chunk_size != 0xFFFFFFFF and chunk_size > available:
                    raise AudioDecodeError(
                        f"{path}: truncated WAV (data chunk declares {chunk_size} bytes, file holds {available})",
                        "truncated",
                    )
                return
            position += 8 + chunk_size + (chunk_size & 1)


def load_audio(path: str | Path, *, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` to ``float32`` of shape ``(channels, samples)`` and its sample rate.

    ``max_seconds`` reads only the beginning of long files. A file whose header promises more
    frames than its body holds (truncated) decodes what is there; one that decodes to nothing
    raises.
    """
    path = Path(path)
    info = probe_audio(path)
    frames = -1 if max_seconds is None else int(max_seconds * info.sample_rate)
    try:
        data, rate = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except Exception as err:
        raise AudioDecodeError(f"{path}: decoding failed ({err})") from None
    if data.shape[0] == 0:
        raise AudioDecodeError(f"{path}: decodes to zero samples")
    return np.ascontiguousarray(data.T), int(rate)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average channels: ``(channels, samples)`` or ``(samples,)`` -> ``(samples,)``."""
    return audio if audio.ndim == 1 else audio.mean(axis=0)


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str | None = None) -> None:
    """Write ``audio`` (``(channels, samples)`` or ``(samples,)``) atomically; format from suffix."""
    path = Path(path)
    frames = audio.T if audio.ndim == 2 else audio
    with atomic_path(path) as tmp:
        sf.write(str(tmp), frames, sample_rate, subtype=subtype, format=path.suffix.lstrip(".").upper())
