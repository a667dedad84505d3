"""DVC stage ``train_supervised`` (params ``audio``, ``train_supervised``).

    python pipeline/train_supervised.py                      # one process
    torchrun --nproc_per_node 2 pipeline/train_supervised.py # DDP (gloo on CPU, NCCL on GPU)

A run killed mid-way resumes from ``--run-dir``/last.pt when started again with the same params.
"""

import argparse
import json
import logging
import os
from pathlib import Path

import pandas as pd
import torch

from marssep_core.config import AudioConfig, load_section
from marssep_core.separation.stages import SupervisedConfig, run_supervised_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--bank", type=Path, default=Path("data/audio_bank"))
    parser.add_argument("--queries", type=Path, default=Path("data/query_bank.pt"))
    parser.add_argument("--pairs", type=Path, default=Path("data/clean/test_pairs.csv"))
    parser.add_argument("--out", type=Path, default=Path("models/separator_sup.pt"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/supervised.json"))
    parser.add_argument("--history", type=Path, default=Path("metrics/supervised_history.csv"))
    parser.add_argument("--run-dir", type=Path, default=Path("runs/train_supervised"), help="resume checkpoints")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: cores / processes)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // world))
    report = run_supervised_stage(
        load_section(SupervisedConfig, "train_supervised", args.params),
        load_section(AudioConfig, "audio", args.params),
        args.raw, args.bank, args.queries, pd.read_csv(args.pairs, keep_default_na=False),
        args.out, args.metrics, args.history, args.run_dir,
    )
    if report is not None:
        print(json.dumps(report, indent=1))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
