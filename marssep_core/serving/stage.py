"""DVC stage ``export_onnx``: export the final separator, then check the bundle against PyTorch.

Parity (``metrics/export.json``, max absolute differences, onnxruntime CPU provider):
- ``mask_random``: masks on random magnitudes/queries for every batch size x frame count in params;
- ``mask_real``: masks on real test-pair mixtures with their real text queries;
- ``text`` / ``audio`` / ``vision``: tower embeddings of the pairs' query texts, reference clips and
  pictures;
- ``end_to_end``: separated waveforms of the pairs, ``Engine`` on onnxruntime vs on PyTorch.
Any difference above its tolerance fails the stage (after the metrics are written).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.io_utils import write_json_atomic
from marssep_core.separation.data import pair_signals
from marssep_core.serving.bundle import read_bundle
from marssep_core.serving.engine import Engine, load_engine
from marssep_core.serving.export import export_bundle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParityConfig:
    """``export.parity``: what is compared and how close it must be."""

    tolerance: float = 1.0e-4  # masks and unit-norm embeddings
    audio_tolerance: float = 1.0e-3  # separated waveforms (full scale 1.0)
    batch_sizes: tuple[int, ...] = (1, 3)
    frames: tuple[int, ...] = (1, 37, 313)
    real_pairs: int = 8
    seed: int = 0
    device: str = "auto"  # both engines: cpu | cuda | auto (CUDA when torch / onnxruntime have it)


@dataclass(frozen=True)
class ExportConfig:
    """``export``: which separator file becomes the served bundle."""

    model: str = "models/separator_rl.pt"
    parity: ParityConfig = field(default_factory=ParityConfig)


class ParityError(RuntimeError):
    """The exported graphs disagree with PyTorch beyond the tolerance."""


def _max_abs(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def random_mask_parity(torch_engine: Engine, onnx_engine: Engine, cfg: ParityConfig, n_freq: int, query_dim: int) -> float:
    """Largest mask difference over random inputs of every configured batch size and length."""
    generator = torch.Generator().manual_seed(cfg.seed)
    worst = 0.0
    for batch in cfg.batch_sizes:
        for frames in cfg.frames:
            # magnitudes spanning ~80 dB, as real spectra do
            magnitude = torch.exp(torch.randn(batch, n_freq, frames, generator=generator) * 3.0 - 2.0).numpy()
            query = F.normalize(torch.randn(batch, query_dim, generator=generator), dim=-1).numpy()
            worst = max(worst, _max_abs(torch_engine.masker(magnitude, query), onnx_engine.masker(magnitude, query)))
    return worst


def real_parity(torch_engine: Engine, onnx_engine: Engine, pairs: pd.DataFrame, bank_dir: Path, raw_dir: Path) -> dict[str, float]:
    """Tower, mask and waveform differences on real test pairs and their real queries."""
    bank = load_audio_bank(bank_dir)
    mixtures = pair_signals(pairs, bank)[0]  # (P, N)
    texts = pairs["query_text"].tolist()
    references = [bank.clip(c) for c in pairs["query_audio_clip"]]
    pictures = [raw_dir / p for p in pairs["query_image"] if p]
    out: dict[str, float] = {}
    embeddings = {}
    for modality, run in (("text", lambda e: e.text(texts)), ("audio", lambda e: e.audio(references)),
                          ("vision", lambda e: e.image(pictures) if pictures else None)):
        reference, exported = run(torch_engine.encoder), run(onnx_engine.encoder)
        if reference is not None:
            out[modality] = _max_abs(reference, exported)
        embeddings[modality] = reference
    query = embeddings["text"].float().numpy()
    magnitude = torch_engine.stft.magnitude_phase(torch.from_numpy(mixtures))[0].numpy()
    out["mask_real"] = _max_abs(torch_engine.masker(magnitude, query), onnx_engine.masker(magnitude, query))
    out["end_to_end"] = max(
        _max_abs(torch_engine.separate_array(mixtures[i : i + 1], embeddings["text"][i : i + 1]),
                 onnx_engine.separate_array(mixtures[i : i + 1], embeddings["text"][i : i + 1]))
        for i in range(len(pairs))
    )
    return out


def check_bundle(cfg: ExportConfig, bundle_dir: Path, pairs_path: Path, bank_dir: Path, raw_dir: Path,
                 metrics_path: Path, export_seconds: float = 0.0) -> dict[str, Any]:
    """Compare ``bundle_dir`` with ``cfg.model`` and write ``metrics_path``; raises ``ParityError``
    (after writing the metrics) when a tolerance is exceeded."""
    info = read_bundle(bundle_dir)
    # full float32 on a GPU: TF32 convolutions alone would exceed the 1e-4 mask tolerance
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch_engine = load_engine("torch", cfg.model, device=cfg.parity.device)
    onnx_engine = load_engine("onnx", bundle_dir, device=cfg.parity.device)
    pairs = pd.read_csv(pairs_path, keep_default_na=False)
    pairs = pairs.sample(n=min(cfg.parity.real_pairs, len(pairs)), random_state=cfg.parity.seed).reset_index(drop=True)
    diffs = {
        "mask_random": random_mask_parity(
            torch_engine=torch_engine, onnx_engine=onnx_engine, cfg=cfg.parity, n_freq=info.n_freq, query_dim=info.query_dim
        )
    }
    diffs |= real_parity(torch_engine=torch_engine, onnx_engine=onnx_engine, pairs=pairs, bank_dir=bank_dir, raw_dir=raw_dir)
    limits = {name: cfg.parity.audio_tolerance if name == "end_to_end" else cfg.parity.tolerance for name in diffs}
    failed = sorted(name for name, value in diffs.items() if value > limits[name])
    metrics = {
        "source": info.source["path"],
        "parity": {f"{name}_max_abs": value for name, value in diffs.items()},
        "tolerance": cfg.parity.tolerance,
        "audio_tolerance": cfg.parity.audio_tolerance,
        "passed": not failed,
        "towers": sorted(info.towers),
        "tower_errors": info.tower_errors,
        "opset": info.opset,
        "export_seconds": round(export_seconds, 1),
        "size_mb": {name.removesuffix(".onnx"): round((bundle_dir / name).stat().st_size / 2**20, 2)
                    for name in info.checksums},
    }
    write_json_atomic(metrics_path, metrics)
    log.info("parity: %s", {k: f"{v:.2e}" for k, v in diffs.items()})
    if failed:
        raise ParityError(f"ONNX differs from PyTorch beyond tolerance in {failed}: "
                          + ", ".join(f"{n} {diffs[n]:.3g} > {limits[n]:g}" for n in failed))
    return metrics


def run_export_stage(cfg: ExportConfig, out_dir: Path, pairs_path: Path, bank_dir: Path, raw_dir: Path,
                     metrics_path: Path) -> dict[str, Any]:
    """Export ``cfg.model`` to ``out_dir``, then ``check_bundle``."""
    started = time.perf_counter()
    export_bundle(Path(cfg.model), out_dir)
    return check_bundle(
        cfg=cfg,
        bundle_dir=out_dir,
        pairs_path=pairs_path,
        bank_dir=bank_dir,
        raw_dir=raw_dir,
        metrics_path=metrics_path,
        export_seconds=time.perf_counter() - started,
    )
