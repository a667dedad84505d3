"""Benchmark serving: throughput (x real time) onnxruntime vs PyTorch eager, and peak memory vs
input length.

1. Throughput, in-process: ``Engine.separate_array`` on 120 s of 16 kHz mono audio (real clips
   from the audio bank, concatenated) with 10 s windows, 25 % overlap (16 windows), at batch 1
   and batch 8 (windows per forward pass). Median of 3 timed runs after a warm-up.
2. Memory, each run a fresh ``marssep separate`` subprocess (file in, file out, 44.1 kHz stereo
   PCM_16 WAV, resampled to 16 kHz and back, streamed): 10 s, 60 s and 10 min inputs at batch 1
   and 4; peak RSS from ``wait4`` of a tiny launcher. A 10 s input is one window, so it never
   fills a batch of 4: at batch 4 the plateau shows against the 60 s input. An import-only
   process gives the baseline the runtime itself costs.

    python benchmarks/bench_serving.py               # CPU; results/serving_cpu.json
    python benchmarks/bench_serving.py --device cuda # onnxruntime-gpu / CUDA torch
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
IMPORTS = "import marssep_core.serving.cli, marssep_core.serving.engine, onnxruntime, torch"


def real_audio(seconds: float, rate: int = 16000) -> np.ndarray:
    """``seconds`` of real clips from the audio bank, concatenated (mono, 16 kHz)."""
    from marssep_core.data.audio_bank import load_audio_bank

    bank = load_audio_bank(ROOT / "data/audio_bank")
    assert bank.sample_rate == rate
    need = int(seconds * rate)
    return np.ascontiguousarray(bank.waves[:need], dtype=np.float32)


def throughput(device: str, seconds: float = 120.0, repeats: int = 3) -> list[dict]:
    import dataclasses

    from marssep_core.serving.engine import load_engine

    wave = real_audio(seconds)[None]
    rows = []
    for backend, model in (("onnx", ROOT / "models/onnx"), ("torch", ROOT / "models/separator_rl.pt")):
        engine = load_engine(backend, model, device=device)
        query = engine.encoder.text(["a dog barking"])
        for batch in (1, 8):
            run = dataclasses.replace(engine, batch=batch)
            run.separate_array(wave[:, : 10 * 16000], query)  # warm-up (session/allocator first touch)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                run.separate_array(wave, query)
                times.append(time.perf_counter() - started)
            median = float(np.median(times))
            rows.append({"backend": backend, "provider": engine.provider, "batch": batch, "audio_s": seconds,
                         "wall_s": round(median, 3), "x_realtime": round(seconds / median, 1)})
            print(rows[-1], flush=True)
    return rows


# Linux keeps ru_maxrss across exec, so a child forked from this (large) process would report
# this process's RSS as its own peak; a tiny launcher forks the measured command instead.
LAUNCHER = """
import os, subprocess, sys, time
started = time.perf_counter()
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(process.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, time.perf_counter() - started)
"""


def _peak_rss(command: list[str]) -> tuple[float, float]:
    """Run ``command``; returns (peak RSS GiB, wall seconds)."""
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *command], cwd=ROOT, capture_output=True, text=True)
    code, max_kib, wall = done.stdout.split()
    if int(code) != 0:
        raise RuntimeError(f"{command} failed: {done.stderr[-2000:]}")
    return int(max_kib) / 2**20, float(wall)


def memory(device: str) -> list[dict]:
    """Peak RSS per (backend, batch, input length); ratios against the 10 s and 60 s inputs."""
    from marssep_core.audio.io import save_audio
    from marssep_core.audio.resample import resample

    lengths = (10, 60, 600)
    settings = [("onnx", 1), ("onnx", 4), ("torch", 1)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = resample(real_audio(60.0), 16000, 44100)
        for seconds in lengths:
            samples = int(seconds * 44100)
            wave = np.tile(clip, samples // clip.shape[0] + 1)[:samples]
            save_audio(Path(tmp) / f"in{seconds}.wav", np.stack([wave, 0.5 * wave]), 44100, subtype="PCM_16")
        baseline, _ = _peak_rss([sys.executable, "-c", IMPORTS])
        rows.append({"run": "import only", "peak_rss_gib": round(baseline, 3)})
        for backend, batch in settings:
            model = "models/onnx" if backend == "onnx" else "models/separator_rl.pt"
            peaks = {}
            for seconds in lengths:
                command = [sys.executable, "-m", "marssep_core.cli", "separate", f"{tmp}/in{seconds}.wav", "--text",
                           "a dog barking", "--backend", backend, "--model", model, "--device", device,
                           "--batch-size", str(batch), "--out", f"{tmp}/out-{backend}-{batch}-{seconds}",
                           "--format", "wav", "--subtype", "PCM_16"]
                peaks[seconds], wall = _peak_rss(command)
                rows.append({"run": f"{backend} batch {batch}, {seconds} s input", "backend": backend, "batch": batch,
                             "input_s": seconds, "peak_rss_gib": round(peaks[seconds], 3), "wall_s": round(wall, 1),
                             "x_realtime_incl_startup": round(seconds / wall, 1)})
                print(rows[-1], flush=True)
            rows.append({"run": f"{backend} batch {batch} ratios", "backend": backend, "batch": batch,
                         "peak_600s_over_10s": round(peaks[600] / peaks[10], 3),
                         "peak_600s_over_60s": round(peaks[600] / peaks[60], 3)})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    import onnxruntime
    import torch

    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": str(torch.__version__),
                    "onnxruntime": onnxruntime.__version__, "torch_threads": torch.get_num_threads()},
        "throughput": throughput(args.device),
        "memory": memory(args.device),
    }
    out = ROOT / f"benchmarks/results/serving_{args.device}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
