"""Benchmark supervised separator training: examples per second and peak memory per profile.

Each measurement runs in a fresh subprocess (so peak RSS belongs to it alone): it builds the
profile's U-Net and STFT, makes random mixtures of the profile's crop length and batch size,
runs ``--warmup`` untimed steps and ``--steps`` timed ones (forward, weighted BCE, backward,
AdamW), and reports step time, examples/s and peak memory (RSS on CPU, ``max_memory_allocated``
on CUDA). Queries are random unit vectors of the tiny encoder's width (128): data loading and
the encoder are not part of the step being measured. Results go to
``benchmarks/results/separator_<device>.json``.

    python benchmarks/bench_separator.py                            # CPU: default (5 steps) and paper (1 step)
    python benchmarks/bench_separator.py --device cuda --bf16 both  # GPU: bf16 on and off
    # a CPU with native bf16 (loop.cpu_bf16), one network and a two-member ensemble:
    python benchmarks/bench_separator.py --profiles default --bf16 both --members 1 2 \
        --out benchmarks/results/separator_cpu_bf16.json
    # the frequency warp's cost (model.warp_bins:model.warp_scale), one and two U-Nets:
    python benchmarks/bench_separator.py --profiles default --members 1 2 --warp 128:log 128:mel 256:log \
        --out benchmarks/results/separator_warp.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml
from mask_ceiling import warp_spec  # benchmarks/, the script's folder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def profile_sections(profile: str) -> tuple[dict, dict]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if profile == "paper":
        overlay = yaml.safe_load((ROOT / "profiles" / "paper.yaml").read_text())
        for section, values in overlay.items():
            params[section] = _merge(params.get(section, {}), values)
    return params["audio"], params["train_supervised"]


def _merge(base: dict, overlay: dict) -> dict:
    out = dict(base)
    for key, value in overlay.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def measure(profile: str, device: str, bf16: bool, steps: int, warmup: int, threads: int, batch: int | None = None,
            members: int = 1, warp: dict | None = None) -> dict:
    import torch

    from marssep_core.config import AudioConfig, build
    from marssep_core.separation.losses import negative_si_sdr, weighted_bce
    from marssep_core.separation.stages import SupervisedConfig, build_separator
    from marssep_core.torch_utils import autocast_dtype

    torch.set_num_threads(threads)
    audio_params, sup_params = profile_sections(profile)
    audio, cfg = build(AudioConfig, audio_params), build(SupervisedConfig, sup_params)
    separator = build_separator(dataclasses.replace(cfg.model, members=members, **(warp or {})), audio, 128).to(device)
    optimizer = torch.optim.AdamW(separator.parameters(), lr=1e-4)
    samples = int(round(cfg.mixing.crop_seconds * audio.sample_rate))
    batch = batch or cfg.loop.batch_size
    mixture_wave = torch.randn(batch, samples, device=device) * 0.1
    target_wave = mixture_wave * 0.5
    query = torch.nn.functional.normalize(torch.randn(batch, 128, device=device), dim=-1)
    # the training loop's rule: bf16 on CUDA, or on a CPU that computes it natively (loop.cpu_bf16)
    dtype = autocast_dtype(torch.device(device), cuda_bf16=bf16, cpu_bf16=bf16)
    autocast = torch.autocast(device, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    def step() -> None:  # SupervisedTask.loss_on's computation per member, minus data sampling
        spec = separator.stft.forward(mixture_wave)
        with autocast:
            member_logits = separator.mask_net(spec.abs(), query, per_member=True)
        losses = []
        for logits in member_logits:
            if cfg.loss == "bce":
                losses.append(weighted_bce(logits, separator.stft.forward(target_wave).abs(), spec.abs()))
            else:
                losses.append(negative_si_sdr(separator.stft.inverse(torch.sigmoid(logits.float()) * spec, samples), target_wave))
        loss = sum(losses) / len(losses)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    result = {
        "profile": profile, "device": device, "bf16": dtype is not None, "members": members, "loss": cfg.loss,
        "warp_bins": separator.mask_net.cfg.warp_bins, "warp_scale": separator.mask_net.cfg.warp_scale,
        "batch_size": batch,
        "crop_samples": samples, "frames": separator.stft.num_frames(samples),
        "parameters": sum(p.numel() for p in separator.parameters()), "timed_steps": steps,
        "step_seconds": round(seconds, 4), "examples_per_second": round(batch / seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if device == "cuda":
        result["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        result["gpu"] = torch.cuda.get_device_name()
    return result


def _run(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        result = {**spec, "error": lines[-1] if lines else f"exit status {proc.returncode} (killed: out of memory?)"}
    else:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profiles", nargs="+", default=["default", "paper"])
    parser.add_argument("--bf16", choices=["on", "off", "both"],
                        help="bf16 autocast (default: on for CUDA, off on a CPU; on a CPU without native bf16 it stays off)")
    parser.add_argument("--members", type=int, nargs="+", default=[1], help="U-Nets in the ensemble (model.members)")
    parser.add_argument("--warp", nargs="+", metavar="BINS:SCALE", type=warp_spec,
                        help="frequency warps to time instead of the profile's (warp_bins:warp_scale), e.g. 128:mel 256:log")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/separator_<device>.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: a single measurement, JSON args
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(**json.loads(args.one))))
        return
    runs = []
    bf16 = args.bf16 or ("on" if args.device == "cuda" else "off")
    modes = [True, False] if bf16 == "both" else [bf16 == "on"]
    for profile in args.profiles:
        # the paper profile's CPU step takes minutes: one timed step there, five elsewhere
        steps, warmup = (1, 0) if profile == "paper" and args.device == "cpu" else (5, 1)
        # None: the profile's own warp
        warps = [{"warp_bins": bins, "warp_scale": scale} for bins, scale in args.warp] if args.warp else [None]
        for members, warp, mode in itertools.product(args.members, warps, modes):
            spec = {"profile": profile, "device": args.device, "bf16": mode, "steps": steps, "warmup": warmup,
                    "threads": args.threads, "members": members, "warp": warp}
            runs.append(_run(spec))
            if "error" in runs[-1] and profile == "paper":  # e.g. out of memory: a smaller batch still gives a rate
                runs.append(_run({**spec, "batch": 16}))
    import torch

    out = args.out or ROOT / "benchmarks" / "results" / f"separator_{args.device}.json"
    out.write_text(json.dumps({"torch": str(torch.__version__), "python": platform.python_version(),
                               "threads": args.threads, "runs": runs}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
