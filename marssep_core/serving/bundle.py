"""The ONNX bundle: a directory the onnxruntime backend serves from.

    models/onnx/
      bundle.json   format, audio/STFT settings, mask-network and encoder facts, file checksums
      mask.onnx     magnitude (B, F, T) float32 + query (B, D) unit-norm -> mask (B, F, T) in [0, 1]
      text.onnx     token ids (B, L) int64 -> unit-norm embedding (B, D)
      audio.onnx    log-mel clips (B, clips, 1, mel, frames) -> unit-norm embedding (B, D)
      vision.onnx   pixels (B, 3, H, W) -> unit-norm embedding (B, D)

STFT/iSTFT and the query preprocessing (tokenizer, log-mel, image transform) stay outside the
graphs. A tower whose export failed is listed in ``bundle.json`` with the error; a query of that
modality then fails with a message naming it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marssep_core.config import AudioConfig
from marssep_core.encoders.api import QueryEmbedder
from marssep_core.serving.runtime import open_session, provider_of
from marssep_core.torch_utils import CheckpointError

FORMAT = "marssep-onnx-v1"
BUNDLE_FILE = "bundle.json"


@dataclass(frozen=True)
class EncoderFacts:
    """What the query preprocessing needs to know about the encoder the towers came from."""

    path: str
    md5: str
    context_length: int
    mel_bins: int
    audio_frames: int
    image_size: int


@dataclass
class BundleInfo:
    """The contents of ``bundle.json``."""

    audio: AudioConfig
    query_dim: int
    n_freq: int
    encoder: EncoderFacts
    source: dict[str, Any]  # the separator file: path, md5, training stage and step
    towers: dict[str, str]  # modality -> file name of the exported tower
    tower_errors: dict[str, str]  # modality -> why it did not export
    opset: int
    versions: dict[str, str]
    checksums: dict[str, str] = dataclasses.field(default_factory=dict)  # file name -> sha256
    vocabulary: list[str] = dataclasses.field(default_factory=list)  # the separator's class texts (typed-text lookup)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> BundleInfo:
        if data.get("format") != FORMAT:
            raise CheckpointError(f"{where}: not a marssep ONNX bundle (format {data.get('format')!r}, expected {FORMAT})")
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["audio"] = AudioConfig(**values["audio"])
        values["encoder"] = EncoderFacts(**values["encoder"])
        return cls(**values)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_bundle(directory: str | Path) -> BundleInfo:
    """Read and check ``bundle.json`` (present, right format, files present and unchanged)."""
    directory = Path(directory)
    manifest = directory / BUNDLE_FILE
    if not manifest.is_file():
        hint = " (it is a PyTorch model file: use --backend torch)" if directory.suffix == ".pt" else ""
        raise CheckpointError(f"{directory}: not an ONNX bundle, {BUNDLE_FILE} not found{hint}")
    try:
        info = BundleInfo.from_json(json.loads(manifest.read_text()), manifest)
    except (json.JSONDecodeError, TypeError, KeyError) as err:
        raise CheckpointError(f"{manifest}: unreadable bundle description ({err})") from None
    for name, expected in info.checksums.items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{directory}: {name} is missing")
        if sha256_file(path) != expected:
            raise CheckpointError(f"{directory}: {name} does not match its checksum in {BUNDLE_FILE} (changed or truncated)")
    return info


class OnnxMasker:
    """``(magnitude (B, F, T), query (B, D)) -> mask (B, F, T)`` float32 numpy, on onnxruntime."""

    def __init__(self, path: Path, device: str = "auto", threads: int = 0, spinning: bool = False):
        self.session = open_session(path, device, threads, spinning)
        self.provider = provider_of(self.session)
        self.device = torch.device("cpu")  # inputs and outputs cross as host arrays whatever the provider

    def masks(self, magnitude: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self(magnitude.numpy(), query.numpy()))

    def __call__(self, magnitude: np.ndarray, query: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"magnitude": magnitude, "query": query})[0]


class OnnxQueryEncoder(QueryEmbedder):
    """``QueryEmbedder`` whose towers run on onnxruntime (sessions opened on first use)."""

    def __init__(self, directory: Path, info: BundleInfo, device: str = "auto", threads: int = 0):
        facts = info.encoder
        super().__init__(context_length=facts.context_length, mel_bins=facts.mel_bins, audio_frames=facts.audio_frames,
                         image_size=facts.image_size, device=torch.device("cpu"))
        self.directory, self.info, self.device_name, self.threads = directory, info, device, threads
        self.sessions: dict[str, Any] = {}
        self.set_vocabulary(info.vocabulary)

    def _embed(self, modality: str, inputs: torch.Tensor) -> torch.Tensor:
        if modality not in self.info.towers:
            reason = self.info.tower_errors.get(modality, "not exported")
            raise CheckpointError(f"{self.directory}: no ONNX {modality} tower in this bundle ({reason}); "
                                  "use --backend torch for this query")
        if modality not in self.sessions:
            self.sessions[modality] = open_session(self.directory / self.info.towers[modality], self.device_name,
                                                   self.threads)
        (embedding,) = self.sessions[modality].run(None, {"inputs": inputs.cpu().numpy()})
        return torch.from_numpy(embedding)
