"""DVC stage ``train_rl`` (params ``audio``, ``rl``): MARS fine-tuning of models/separator_sup.pt.

    python pipeline/train_rl.py                      # one process
    torchrun --nproc_per_node 2 pipeline/train_rl.py # DDP (gloo on CPU, NCCL on GPU)

A run killed mid-way resumes from ``--run-dir``/last.pt when started again with the same params.
"""

import argparse
import json
import logging
import os
from pathlib import Path

import torch

from marssep_core.config import AudioConfig, load_section
from marssep_core.rl.stage import RLConfig, run_rl_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--bank", type=Path, default=Path("data/audio_bank"))
    parser.add_argument("--queries", type=Path, default=Path("data/query_bank.pt"))
    parser.add_argument("--init", type=Path, default=Path("models/separator_sup.pt"))
    parser.add_argument("--judge", type=Path, default=Path("models/judge.pt"))
    parser.add_argument("--out", type=Path, default=Path("models/separator_rl.pt"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/rl.json"))
    parser.add_argument("--history", type=Path, default=Path("metrics/rl_history.csv"))
    parser.add_argument("--run-dir", type=Path, default=Path("runs/train_rl"), help="resume checkpoints")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: cores / processes)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // world))
    report = run_rl_stage(
        load_section(RLConfig, "rl", args.params), load_section(AudioConfig, "audio", args.params),
        args.raw, args.bank, args.queries, args.init, args.judge, args.out, args.metrics, args.history, args.run_dir,
    )
    if report is not None:
        print(json.dumps(report, indent=1))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
