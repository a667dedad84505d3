"""The separation engine: STFT -> mask (onnxruntime or PyTorch) -> iSTFT, window by window.

    engine = load_engine("onnx", "models/onnx", device="auto")
    query = embed_query(engine.encoder, text="a dog barking")                  # (1, D)
    result = engine.separate_file("mix.flac", "out/dog.wav", query)          # streamed
    estimate = engine.separate_array(wave, query)                            # (C, N) at model rate

Files are streamed: blocks are decoded, resampled to the model rate (soxr, streaming), cut into
``segment``-second windows with ``overlap`` (``batch`` windows x channels per forward pass),
cross-faded, resampled back to the input's rate and written to a temporary file renamed onto the
destination when complete. Memory is bounded by the window and batch sizes, not by the length of
the input. Every channel is separated with the same query.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf
import soxr
import torch

from marssep_core.audio.io import AudioDecodeError, probe_audio
from marssep_core.audio.overlap_add import StreamingOverlapAdd
from marssep_core.audio.stft import STFT
from marssep_core.config import AudioConfig
from marssep_core.encoders.api import QueryEmbedder, QueryEncoder
from marssep_core.io_utils import atomic_path, md5_file
from marssep_core.separation.model import MaskNet
from marssep_core.separation.separator import load_separator
from marssep_core.serving.bundle import OnnxMasker, OnnxQueryEncoder, read_bundle
from marssep_core.torch_utils import CheckpointError, resolve_device

BACKENDS = ("onnx", "torch")
BLOCK_SECONDS = 5.0  # decoding block; any size gives the same output


class Masker(Protocol):
    """``(magnitude (B, F, T), query (B, D)) -> mask (B, F, T)``: ``masks`` on tensors that live on
    ``device`` (the engine computes the STFT there), ``__call__`` on float32 numpy (parity checks)."""

    provider: str
    device: torch.device

    def masks(self, magnitude: torch.Tensor, query: torch.Tensor) -> torch.Tensor: ...

    def __call__(self, magnitude: np.ndarray, query: np.ndarray) -> np.ndarray: ...


class TorchMasker:
    """The PyTorch mask network as a ``Masker`` (eager, inference mode)."""

    def __init__(self, mask_net: MaskNet, device: str = "cpu"):
        self.device = resolve_device(device)
        self.mask_net = mask_net.to(self.device).eval()
        self.provider = f"torch-{self.device.type}"

    @torch.inference_mode()
    def masks(self, magnitude: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        return self.mask_net.mask(magnitude, query).float()

    def __call__(self, magnitude: np.ndarray, query: np.ndarray) -> np.ndarray:
        return self.masks(torch.from_numpy(magnitude).to(self.device), torch.from_numpy(query).to(self.device)).cpu().numpy()


@dataclass(frozen=True)
class FileResult:
    """One separated file: the input's rate, channels and duration."""

    sample_rate: int
    channels: int
    seconds: float


@dataclass
class Engine:
    """A masker, its query encoder and the signal settings; see the module docstring."""

    masker: Masker
    encoder: QueryEmbedder
    audio: AudioConfig
    segment: float | None = 10.0  # seconds per window; None: the whole input in one window
    overlap: float = 0.25
    batch: int = 1  # windows per forward pass (times the channel count)

    def __post_init__(self) -> None:
        self.stft = STFT.from_config(self.audio)
        if self.batch < 1:
            raise ValueError(f"batch must be at least 1, got {self.batch}")

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    @property
    def provider(self) -> str:
        return self.masker.provider

    def process_windows(self, windows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Windows ``(W, C, S)`` at the model rate and a query ``(1, D)`` -> estimates ``(W, C, S)``.

        The STFT, the mask and the iSTFT run on the masker's device (one copy in, one out)."""
        count, channels, samples = windows.shape
        if samples < self.stft.n_fft:  # a whole input shorter than one FFT frame: zero-pad, crop back below
            windows = np.pad(windows, ((0, 0), (0, 0), (0, self.stft.n_fft - samples)))
        device = self.masker.device
        with torch.inference_mode():
            spec = self.stft.forward(torch.from_numpy(windows.reshape(count * channels, -1)).to(device))
            magnitude = spec.abs()
            queries = torch.from_numpy(np.asarray(query, dtype=np.float32)).to(device).expand(count * channels, -1)
            mask = self.masker.masks(magnitude, queries.contiguous())
            # a real mask times the complex spectrum is |X| m e^{i angle X}, without computing the
            # angle and rebuilding the polar form
            estimate = self.stft.inverse(mask * spec, windows.shape[-1])
        return estimate.cpu().numpy().reshape(count, channels, -1)[..., :samples]

    def _stream(self, channels: int, query: torch.Tensor, total_samples: int) -> StreamingOverlapAdd:
        segment = int(round(self.segment * self.sample_rate)) if self.segment else max(1, total_samples)
        as_numpy = query.detach().cpu().float().numpy()
        return StreamingOverlapAdd(process=lambda w: self.process_windows(w, as_numpy), channels=channels, segment=max(1, segment),
                                   overlap=self.overlap, batch=self.batch)

    def separate_array(self, wave: np.ndarray, query: torch.Tensor) -> np.ndarray:
        """``(C, N)`` float32 at the model rate -> the estimate ``(C, N)``; non-finite samples are
        refused (``AudioDecodeError`` of kind ``non_finite``)."""
        _check_finite(np.asarray(wave), "the input array", 0, self.sample_rate)
        stream = self._stream(wave.shape[0], query, wave.shape[1])
        return np.concatenate([stream.push(np.asarray(wave, dtype=np.float32)), stream.finish()], axis=1)

    def separate_file(self, source: Path, dest: Path, query: torch.Tensor, subtype: str | None = None) -> FileResult:
        """Stream ``source`` through the model into ``dest`` (format from its suffix), atomically.

        The output has the input's sample rate, channel count and length. Raises
        ``AudioDecodeError`` naming ``source`` when it cannot be read; ``dest`` is then untouched.
        """
        info = probe_audio(source)
        rate, channels = info.sample_rate, info.channels
        model_samples = math.ceil(info.frames * self.sample_rate / rate) + 1
        stream = self._stream(channels, query, model_samples)
        to_model = _Resampler(rate, self.sample_rate, channels)
        to_input = _Resampler(self.sample_rate, rate, channels)
        decoded = written = 0
        with atomic_path(dest) as tmp:
            with sf.SoundFile(str(tmp), "w", rate, channels, subtype=subtype, format=dest.suffix.lstrip(".").upper()) as out:

                def write(block: np.ndarray, last: bool = False) -> None:
                    nonlocal written
                    frames = to_input(block.T, last)[: max(0, decoded - written)]
                    out.write(frames)
                    written += frames.shape[0]

                for block in _decoded_blocks(source, max(1, int(BLOCK_SECONDS * rate))):
                    _check_finite(block.T, str(source), decoded, rate)
                    decoded += block.shape[0]
                    write(stream.push(to_model(block, False).T))
                if decoded == 0:
                    raise AudioDecodeError(f"{source}: decodes to zero samples")
                write(stream.push(to_model(np.zeros((0, channels), np.float32), True).T))
                write(stream.finish(), last=True)
                if written < decoded:  # the resampler's output can fall a few samples short
                    out.write(np.zeros((decoded - written, channels), dtype=np.float32))
        return FileResult(rate, channels, decoded / rate)


def _check_finite(wave: np.ndarray, name: str, offset: int, rate: int) -> None:
    """Refuse NaN or infinite samples in ``wave (C, N)`` (a float file can hold them; separating
    them would write a file of NaN). ``offset``: samples of ``name`` before this block."""
    bad = ~np.isfinite(wave)
    if bad.any():
        first = offset + int(np.argmax(bad.any(axis=0)))
        raise AudioDecodeError(f"{name}: non-finite samples (NaN or inf), the first at {first / rate:.3f} s", "non_finite")


def _decoded_blocks(source: Path, frames: int) -> Iterator[np.ndarray]:
    """``(frames, C)`` float32 blocks of ``source``; a decoding failure (only that: errors raised
    by whoever consumes the blocks pass through) becomes ``AudioDecodeError`` naming the file."""
    with sf.SoundFile(str(source)) as handle:
        blocks = handle.blocks(blocksize=frames, dtype="float32", always_2d=True)
        while True:
            try:
                block = next(blocks)
            except StopIteration:
                return
            except (sf.LibsndfileError, RuntimeError) as err:
                raise AudioDecodeError(f"{source}: decoding failed ({err})") from None
            yield block


class _Resampler:
    """Streaming soxr resampling of ``(frames, C)`` blocks; the identity when rates match."""

    def __init__(self, source_rate: int, target_rate: int, channels: int):
        self.stream = None if source_rate == target_rate else soxr.ResampleStream(
            source_rate, target_rate, channels, dtype="float32", quality="HQ")

    def __call__(self, frames: np.ndarray, last: bool) -> np.ndarray:
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        return frames if self.stream is None else self.stream.resample_chunk(frames, last=last)


@dataclass
class TorchParts:
    """What a separator file gives the PyTorch backend, plus the file's own record."""

    masker: TorchMasker
    encoder: QueryEncoder
    encoder_path: Path
    audio: AudioConfig
    meta: dict  # the model file's ``meta`` entry (stage, step, versions, ...)


def load_torch_parts(model: Path, encoder: Path | None, device: str) -> TorchParts:
    """The PyTorch mask network and query encoder of a separator file (encoder md5 checked)."""
    separator, info = load_separator(model)
    encoder_path = Path(encoder or info["encoder"]["path"])
    if not encoder_path.is_file():
        raise CheckpointError(f"{model}: its query encoder {encoder_path} is missing; pass --encoder /path/to/encoder.pt")
    expected = info["encoder"].get("md5")
    if encoder is None and expected and md5_file(encoder_path) != expected:
        raise CheckpointError(f"{model}: {encoder_path} is not the encoder the separator was trained with "
                              "(md5 differs); pass --encoder explicitly to override")
    masker = TorchMasker(separator.mask_net, device)
    query_encoder = QueryEncoder.from_checkpoint(encoder_path, str(masker.device))
    query_encoder.set_vocabulary(info["meta"].get("vocabulary", []))
    return TorchParts(masker=masker, encoder=query_encoder, encoder_path=encoder_path, audio=separator.audio, meta=info["meta"])


def load_engine(backend: str, model: str | Path, encoder: str | Path | None = None, device: str = "auto",
                segment: float | None = 10.0, overlap: float = 0.25, batch: int = 1, threads: int = 0,
                typed_text: bool = False) -> Engine:
    """An ``Engine`` on ``backend`` (onnx: ``model`` is a bundle directory; torch: a separator file).
    Text queries are looked up among the model's class texts when it records them, unless
    ``typed_text`` (then they are used as typed)."""
    model = Path(model)
    if backend == "onnx":
        info = read_bundle(model)
        masker, query_encoder = OnnxMasker(model / "mask.onnx", device, threads), OnnxQueryEncoder(model, info, device, threads)
        audio = info.audio
    elif backend == "torch":
        if model.is_dir():
            raise CheckpointError(f"{model}: a directory (an ONNX bundle?); --backend torch needs a separator .pt file")
        parts = load_torch_parts(model, Path(encoder) if encoder else None, device)
        masker, query_encoder, audio = parts.masker, parts.encoder, parts.audio
    else:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if typed_text:
        query_encoder.set_vocabulary([])
    return Engine(masker=masker, encoder=query_encoder, audio=audio, segment=segment, overlap=overlap, batch=batch)
