"""Benchmark MARS RL steps: steps per second and peak memory at G = 4, default profile.

Two rollouts are timed on the same inputs: the batched one the stage uses (all G x B masks drawn
in one call, all waveforms reconstructed and scored at once) and a per-sample Python loop over
(item, sample) doing the same work one mask at a time. Full steps (rollout + policy update) are
timed with the batched rollout, with the policy of params ``rl`` (``rl.patch``) and, when that is
not the per-bin policy, once more with ``patch [1, 1]`` (mode ``full_step_per_bin``). Inputs: the real models (models/separator_sup.pt, the reward
encoder and MLBP of params ``rl``) on mixtures from the audio bank; each setting runs in a fresh
subprocess so peak RSS (CPU) or ``max_memory_allocated`` (CUDA) is its own. Results go to
``benchmarks/results/rl_<device>.json``.

    python benchmarks/bench_rl.py                  # CPU
    python benchmarks/bench_rl.py --device cuda    # GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(mode: str, device_name: str, steps: int, threads: int) -> dict:
    import numpy as np
    import torch

    from marssep_core.config import load_section
    from marssep_core.data.audio_bank import load_audio_bank
    from marssep_core.encoders.store import load_encoder
    from marssep_core.evaluation.judge import load_judge
    from marssep_core.rl.policy import sample_masks
    from marssep_core.rl.reward import RewardModel, load_mlbp
    from marssep_core.rl.stage import RLConfig
    from marssep_core.rl.task import RewardAnchors, RLTask, ValidationSet
    from marssep_core.separation.data import MixtureSampler
    from marssep_core.separation.queries import QueryBank
    from marssep_core.separation.separator import load_separator
    from marssep_core.separation.stages import validation_pairs

    torch.set_num_threads(threads)
    device = torch.device(device_name)
    cfg = load_section(RLConfig, "rl", ROOT / "params.yaml")
    if mode == "full_step_per_bin":
        cfg, mode = dataclasses.replace(cfg, patch=(1, 1)), "full_step"
    bank, queries = load_audio_bank(ROOT / "data/audio_bank"), QueryBank.load(ROOT / "data/query_bank.pt")
    separator, _ = load_separator(ROOT / "models/separator_sup.pt")
    separator.to(device)
    encoder, _, _ = load_encoder(ROOT / cfg.reward_encoder)
    reward = RewardModel(encoder, load_mlbp(ROOT / cfg.reward_mlbp), cfg.reward).to(device)
    judge, _ = load_judge(ROOT / "models/judge.pt")
    val = validation_pairs(bank, ROOT / "data/raw", cfg.validation).head(2)
    anchors = RewardAnchors(queries, bank)
    task = RLTask(
        separator=separator,
        cfg=cfg,
        steps=1000,
        sampler=MixtureSampler(bank, queries, "train", cfg.mixing),
        reward=reward,
        anchors=anchors,
        val=ValidationSet(pairs=val, bank=bank, queries=queries, reward_queries=anchors.queries, reward=reward),
        judge=judge,
        eval_batch=8,
    )
    batch = cfg.loop.batch_size
    optimizer = torch.optim.AdamW(separator.mask_net.parameters(), lr=1e-6)

    def per_sample_rollout(rng: np.random.Generator) -> None:
        sampled = task.sampler.sample(batch, rng)
        text, audio, vision, has_vision = (t.to(device) for t in anchors.sample(sampled.target_class, rng))
        z = reward.anchors(text, audio, vision, has_vision)
        with torch.no_grad():
            for item in range(batch):
                mixture = sampled.mixture[item : item + 1].to(device)
                magnitude, phase = separator.spectrogram(mixture)
                proposal = torch.sigmoid(separator.mask_net(magnitude, sampled.query[item : item + 1].to(device)).float())
                for _ in range(cfg.group_size):
                    mask = sample_masks(proposal, cfg.kappa, 1)
                    wave = separator.reconstruct(mask, magnitude, phase, mixture.shape[-1])
                    reward(wave, z[item : item + 1], sampled.target[item : item + 1].to(device), z[item : item + 1])

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    timings = []
    for step in range(steps + 1):  # the first step warms up and is not timed
        rng = np.random.default_rng([0, step])
        sync()
        started = time.perf_counter()
        if mode == "per_sample_rollout":
            per_sample_rollout(rng)
        elif mode == "batched_rollout":
            task.roll_out(separator.mask_net, rng, batch, device)
        else:
            separator.mask_net.train()
            task.rollout = None
            loss, _ = task.loss(separator.mask_net, rng, batch, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync()
        if step:
            timings.append(time.perf_counter() - started)
    seconds = float(np.mean(timings))
    peak = (torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    return {"mode": mode, "patch": list(cfg.patch), "reward_weights": dataclasses.asdict(cfg.reward.weights), "device": device_name, "batch": batch, "group_size": cfg.group_size, "crop_seconds": cfg.mixing.crop_seconds,
            "steps_timed": steps, "seconds_per_call": round(seconds, 3), "calls_per_second": round(1 / seconds, 3),
            "peak_memory_gib": round(peak, 2), "threads": threads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.device, args.steps, args.threads)))
        return
    runs = []
    patch = tuple(yaml.safe_load((ROOT / "params.yaml").read_text())["rl"]["patch"])
    for mode in ("batched_rollout", "per_sample_rollout", "full_step", *(("full_step_per_bin",) if patch != (1, 1) else ())):
        proc = subprocess.run([sys.executable, __file__, "--child", mode, "--device", args.device, "--steps", str(args.steps),
                               "--threads", str(args.threads)], capture_output=True, text=True, check=True, cwd=ROOT)
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(runs[-1])
    speedup = runs[1]["seconds_per_call"] / runs[0]["seconds_per_call"]
    result = {"benchmark": "rl", "command": f"python benchmarks/bench_rl.py --device {args.device}", "cpu_count": os.cpu_count(),
              "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
              "batched_rollout_speedup": round(speedup, 2), "runs": runs}
    out = ROOT / "benchmarks" / "results" / f"rl_{args.device.split(':')[0]}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
