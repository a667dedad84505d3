"""Export a separator (mask network + query towers) to an ONNX bundle; see ``bundle.py``.

    info = export_bundle(Path("models/separator_rl.pt"), Path("models/onnx"))

torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``) with dynamic batch and time
axes; each graph is one self-contained file (no external weight files). The bundle directory is
built next to the destination and renamed onto it when complete.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from marssep_core import __version__
from marssep_core.encoders.api import QueryEncoder
from marssep_core.encoders.imagebind import ImageBindModel
from marssep_core.encoders.preprocess import audio_to_model_input, image_to_model_input
from marssep_core.io_utils import md5_file, write_json_atomic
from marssep_core.separation.model import MaskNet
from marssep_core.serving.bundle import BUNDLE_FILE, BundleInfo, EncoderFacts, sha256_file
from marssep_core.serving.engine import load_torch_parts

log = logging.getLogger(__name__)
logging.getLogger("onnx_ir").setLevel(logging.WARNING)  # one INFO line per deduplicated initializer
STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"


class MaskGraph(nn.Module):
    """What ``mask.onnx`` computes: ``(magnitude (B, F, T), query (B, D)) -> mask (B, F, T)``."""

    def __init__(self, mask_net: MaskNet):
        super().__init__()
        self.mask_net = mask_net

    def forward(self, magnitude: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        return self.mask_net.mask(magnitude, query)


class TowerGraph(nn.Module):
    """What ``<modality>.onnx`` computes: model inputs -> unit-norm embedding ``(B, D)``."""

    def __init__(self, model: ImageBindModel, modality: str):
        super().__init__()
        self.model, self.modality = model, modality

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.embed(self.modality, inputs), dim=-1)


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], names: list[str], dynamic: dict, path: Path) -> int:
    """Export ``module`` to ``path``; returns the opset used."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter deprecation chatter, not about this model
        torch.onnx.export(module.eval(), args, str(path), dynamo=True, input_names=names[:-1],
                                    output_names=names[-1:], dynamic_shapes=dynamic, external_data=False,
                                    verbose=False)
    graph = onnx.load(str(path))
    # the exporter stores each node's Python stack trace, absolute source paths included, so the
    # graph's bytes would depend on where the checkout lives: dropped (the namespaces stay)
    for node in [*graph.graph.node, *(n for function in graph.functions for n in function.node)]:
        kept = [prop for prop in node.metadata_props if prop.key != STACK_TRACE_KEY]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    onnx.save(graph, str(path))
    onnx.checker.check_model(str(path))
    return next(op.version for op in graph.opset_import if op.domain in ("", "ai.onnx"))


def export_mask_graph(mask_net: MaskNet, path: Path) -> int:
    """``mask.onnx``: the mask network with dynamic batch and frame axes; returns the opset."""
    cfg = mask_net.cfg
    batch, frames = torch.export.Dim.DYNAMIC, torch.export.Dim.DYNAMIC
    example = (torch.rand(2, cfg.n_freq, 40), F.normalize(torch.randn(2, cfg.query_dim), dim=-1))
    return _export(module=MaskGraph(mask_net), args=example, names=["magnitude", "query", "mask"],
                   dynamic={"magnitude": {0: batch, 2: frames}, "query": {0: batch}}, path=path)


def tower_examples(encoder: QueryEncoder) -> dict[str, torch.Tensor]:
    """Two example inputs per modality, shaped as the preprocessing makes them."""
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)) for _ in range(2)]
    waves = [torch.from_numpy(rng.standard_normal(encoder.sample_rate * 2).astype(np.float32)) for _ in range(2)]
    return {
        "text": encoder.tokenizer(["a dog barking", "a piano"]),
        "audio": torch.stack([audio_to_model_input(w, encoder.audio_cfg) for w in waves]),
        "vision": torch.stack([image_to_model_input(p, encoder.image_size) for p in pictures]),
    }


def export_bundle(model_path: Path, out_dir: Path, encoder_path: Path | None = None) -> BundleInfo:
    """Export ``model_path``'s mask network and its encoder's towers into ``out_dir`` (replaced)."""
    parts = load_torch_parts(model_path, encoder_path, "cpu")
    mask_net, encoder = parts.masker.mask_net, parts.encoder
    cfg = mask_net.cfg
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        opset = export_mask_graph(mask_net, staging / "mask.onnx")
        towers, errors = {}, {}
        for modality, inputs in tower_examples(encoder).items():
            try:
                _export(module=TowerGraph(encoder.model, modality), args=(inputs,), names=["inputs", "query_embedding"],
                        dynamic={"inputs": {0: torch.export.Dim.DYNAMIC}}, path=staging / f"{modality}.onnx")
                towers[modality] = f"{modality}.onnx"
            except Exception as err:  # an encoder variant the exporter cannot trace: serve it with torch
                log.warning("the %s tower did not export: %s", modality, err)
                errors[modality] = f"{type(err).__name__}: {str(err)[:300]}"
        source = {"path": str(model_path), "md5": md5_file(model_path), "stage": parts.meta.get("stage", ""),
                  "step": parts.meta.get("step", "")}
        model_cfg = encoder.model.cfg
        info = BundleInfo(
            audio=parts.audio, query_dim=cfg.query_dim, n_freq=cfg.n_freq,
            encoder=EncoderFacts(path=str(parts.encoder_path), md5=md5_file(parts.encoder_path), context_length=model_cfg.context_length,
                                 mel_bins=model_cfg.mel_bins, audio_frames=model_cfg.audio_frames, image_size=model_cfg.image_size),
            source=source, towers=towers, tower_errors=errors, opset=opset, vocabulary=list(parts.meta.get("vocabulary", [])),
            versions={"marssep": __version__, "torch": str(torch.__version__), "onnx": onnx.__version__,
                      "python": platform.python_version()},
        )
        info.checksums = {name: sha256_file(staging / name) for name in ["mask.onnx", *towers.values()]}
        write_json_atomic(staging / BUNDLE_FILE, info.to_json())
        os.chmod(staging, 0o755)
        _replace_directory(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return info


def _replace_directory(staging: Path, dest: Path) -> None:
    """Rename ``staging`` onto ``dest``; an existing ``dest`` is moved aside first, then deleted."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
    os.replace(staging, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
