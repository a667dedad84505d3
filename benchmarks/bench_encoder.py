"""Benchmark encoder throughput: embeddings per second per modality, tiny and imagebind_huge.

Inputs are preprocessed tensors of the real shapes (audio: 3 clips x 1 x 128 x 204 per item;
vision: 3 x 224 x 224; text: 77 tokens). Weights are random (throughput does not depend on them).
Results go to ``benchmarks/results/encoder_<device>.json``.

    python benchmarks/bench_encoder.py                 # CPU, both configs
    python benchmarks/bench_encoder.py --device cuda   # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from marssep_core.encoders.imagebind import PRESETS, ImageBindModel

ROOT = Path(__file__).resolve().parents[1]


def inputs(modality: str, batch: int, cfg, device: str) -> torch.Tensor:  # noqa: ANN001
    if modality == "audio":
        return torch.randn(batch, 3, 1, cfg.mel_bins, cfg.audio_frames, device=device)
    if modality == "vision":
        return torch.randn(batch, 3, cfg.image_size, cfg.image_size, device=device)
    tokens = torch.randint(1, 40000, (batch, cfg.context_length), device=device)
    tokens[:, 10] = cfg.vocab_size - 1
    return tokens


def measure(model: ImageBindModel, modality: str, batch: int, repeats: int, device: str) -> float:
    x = inputs(modality, batch, model.cfg, device)
    with torch.inference_mode():
        model.embed(modality, x)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            model.embed(modality, x)
        if device == "cuda":
            torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", nargs="+", default=["tiny", "imagebind_huge"])
    args = parser.parse_args()
    results = {"device": args.device, "torch": str(torch.__version__), "threads": torch.get_num_threads(),
               "python": platform.python_version(), "embeddings_per_second": {}}
    if args.device == "cuda":
        results["gpu"] = torch.cuda.get_device_name()
    for name in args.configs:
        model = ImageBindModel(PRESETS[name]()).to(args.device).eval()
        huge_on_cpu = name == "imagebind_huge" and args.device == "cpu"
        batch, repeats = (2, 2) if huge_on_cpu else (32, 5)
        results["embeddings_per_second"][name] = {
            "batch": batch,
            **{
                m: round(measure(model=model, modality=m, batch=batch, repeats=repeats, device=args.device), 2)
                for m in ("audio", "text", "vision")
            },
        }
        print(name, results["embeddings_per_second"][name], flush=True)
        del model
    out = ROOT / "benchmarks" / "results" / f"encoder_{args.device}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
