"""Where the serving time goes: the mask network per operator on onnxruntime and on PyTorch eager,
its FLOPs per second of audio, and this machine's measured peak GFLOP/s.

The same windows for both backends: 10 s windows of 120 s of real audio from the audio bank, as
``Engine`` cuts them (25 % overlap), STFT magnitudes computed once. Each backend runs the mask
network on them one window at a time (batch 1, the serving default); onnxruntime with its
profiler on (node events summed per operator type), PyTorch under ``torch.profiler`` (self CPU
time per aten operator). The ceiling: FLOPs counted by ``torch.utils.flop_counter`` on one window,
against the GFLOP/s of a 2048 x 2048 float32 matrix product on all cores. Beside it, the whole
engine on the same audio: onnxruntime with and without its threads spinning between runs, and
PyTorch.

    python benchmarks/profile_serving.py                  # -> benchmarks/results/serving_profile.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_serving import real_audio  # noqa: E402

from marssep_core.serving.bundle import read_bundle  # noqa: E402
from marssep_core.serving.engine import load_torch_parts  # noqa: E402


def window_magnitudes(seconds: float, segment: float = 10.0, overlap: float = 0.25) -> tuple[list[torch.Tensor], object]:
    """Magnitudes ``(1, F, T)`` of the windows ``Engine`` would cut from ``seconds`` of real audio."""
    from marssep_core.audio.stft import STFT

    info = read_bundle(ROOT / "models/onnx")
    stft = STFT.from_config(info.audio)
    wave = torch.from_numpy(real_audio(seconds))
    size = int(segment * info.audio.sample_rate)
    hop = int(size * (1 - overlap))
    starts = range(0, max(1, wave.shape[0] - size + hop), hop)
    windows = [torch.nn.functional.pad(wave[s: s + size], (0, max(0, s + size - wave.shape[0]))) for s in starts]
    return [stft.magnitude_phase(w[None])[0] for w in windows], info


def timed(run, inputs, repeats: int) -> float:
    """Median over ``repeats`` of the seconds to run every input once (after one warm-up pass)."""
    for x in inputs[:2]:
        run(x)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for x in inputs:
            run(x)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def onnx_session(path: Path, threads: int, level: str, profile_dir: Path | None = None, spinning: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_dir / "ort")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def onnx_op_profile(path: Path, magnitudes, query: np.ndarray, threads: int, level: str) -> dict[str, float]:
    """Milliseconds per window spent in each operator type (onnxruntime's profiler, node events)."""
    with tempfile.TemporaryDirectory() as tmp:
        session = onnx_session(path, threads, level, Path(tmp))
        for m in magnitudes:
            session.run(None, {"magnitude": m.numpy(), "query": query})
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / 1000 / len(magnitudes)
    return dict(sorted(((k, round(v, 3)) for k, v in per_op.items()), key=lambda kv: -kv[1]))


def torch_op_profile(mask_net, magnitudes, query: torch.Tensor) -> dict[str, float]:
    """Milliseconds per window of self CPU time per aten operator (``torch.profiler``)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for m in magnitudes:
            mask_net.mask(m, query)
    rows = {e.key: e.self_cpu_time_total / 1000 / len(magnitudes) for e in prof.key_averages()}
    return dict(sorted(((k, round(v, 3)) for k, v in rows.items() if v >= 0.005), key=lambda kv: -kv[1]))


def engine_throughput(seconds: float, repeats: int) -> dict[str, float]:
    """The whole engine (STFT, mask, iSTFT, overlap-add; batch 1) on ``seconds`` of real audio:
    onnxruntime with its threads spinning between runs and without (the default), and PyTorch."""
    import dataclasses

    from marssep_core.serving.bundle import OnnxMasker
    from marssep_core.serving.engine import load_engine

    wave = real_audio(seconds)[None]
    onnx = load_engine("onnx", ROOT / "models/onnx", device="cpu")
    engines = {"onnxruntime, no spinning (default)": onnx,
               "onnxruntime, spinning": dataclasses.replace(onnx, masker=OnnxMasker(ROOT / "models/onnx/mask.onnx", "cpu", spinning=True)),
               "torch eager": load_engine("torch", ROOT / "models/separator_rl.pt", device="cpu")}
    query = onnx.encoder.text(["a dog barking"])
    out = {}
    for name, engine in engines.items():
        out[name] = round(seconds / timed(lambda w: engine.separate_array(w, query), [wave], repeats), 1)
        print(f"engine: {name:<38} {out[name]:>8}x real time", flush=True)
    return out


def flops_per_window(mask_net, magnitude: torch.Tensor, query: torch.Tensor) -> dict[str, float]:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        mask_net.mask(magnitude, query)
    per_op = {str(op).split(".")[-1] if "." in str(op) else str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    return {"total": counter.get_total_flops(), **per_op}


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--graph", type=Path, default=ROOT / "models/onnx/mask.onnx", help="mask graph to profile")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/serving_profile.json")
    args = parser.parse_args()
    import onnxruntime

    magnitudes, info = window_magnitudes(args.seconds)
    parts = load_torch_parts(ROOT / "models/separator_rl.pt", None, "cpu")
    mask_net = parts.masker.mask_net
    query = parts.encoder.text(["a dog barking"])
    query_np = query.numpy()
    results: dict = {"command": "python benchmarks/profile_serving.py " + " ".join(sys.argv[1:]),
                     "machine": {"cpus": os.cpu_count(), "torch": str(torch.__version__), "onnxruntime": onnxruntime.__version__,
                                 "torch_threads": torch.get_num_threads()},
                     "windows": len(magnitudes), "window_shape": list(magnitudes[0].shape), "audio_s": args.seconds}
    timings = {}
    with torch.inference_mode():
        timings["torch eager"] = timed(lambda m: mask_net.mask(m, query), magnitudes, args.repeats)
    settings = [(threads, level, True) for threads in (1, 2) for level in ("ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL")]
    for threads, level, spinning in [*settings, (0, "ORT_ENABLE_ALL", True), (2, "ORT_ENABLE_ALL", False)]:
        session = onnx_session(args.graph, threads, level, spinning=spinning)
        timings[f"onnxruntime threads={threads} {level}{'' if spinning else ' no-spin'}"] = timed(
            lambda m: session.run(None, {"magnitude": m.numpy(), "query": query_np}), magnitudes, args.repeats)
    results["mask_network_seconds"] = {k: round(v, 4) for k, v in timings.items()}
    results["mask_network_x_realtime"] = {k: round(args.seconds / v, 1) for k, v in timings.items()}
    for key, value in results["mask_network_x_realtime"].items():
        print(f"{key:<45} {value:>8}x real time", flush=True)
    results["engine_x_realtime"] = engine_throughput(args.seconds, args.repeats)
    results["ops_ms_per_window"] = {
        "onnxruntime": onnx_op_profile(path=args.graph, magnitudes=magnitudes, query=query_np, threads=0, level="ORT_ENABLE_ALL"),
        "torch": torch_op_profile(mask_net, magnitudes, query),
    }
    flops = flops_per_window(mask_net, magnitudes[0], query)
    peak = matmul_gflops()
    hop_seconds = args.seconds / len(magnitudes)
    achieved = {k: flops["total"] * len(magnitudes) / v / 1e9 for k, v in timings.items()}
    results["ceiling"] = {
        "flops_per_window": flops, "flops_per_audio_second": round(flops["total"] / hop_seconds),
        "matmul_2048_gflops": round(peak, 1),
        "x_realtime_at_peak": round(peak * 1e9 / (flops["total"] / hop_seconds), 1),
        "achieved_gflops": {k: round(v, 2) for k, v in achieved.items()},
        "fraction_of_peak": {k: round(v / peak, 3) for k, v in achieved.items()},
    }
    print(json.dumps({"ops": {k: dict(list(v.items())[:8]) for k, v in results["ops_ms_per_window"].items()},
                      "ceiling": results["ceiling"]}, indent=1))
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
