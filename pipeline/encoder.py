"""DVC stages ``pretrain_encoder``, ``align_stage1..3`` and ``train_fusion`` (params ``encoder``).

    python pipeline/encoder.py pretrain | stage1 | stage2 | stage3 | fusion

A stage killed mid-way resumes from ``--runs``/<stage>/last.pt when started again with the same
params; under ``torchrun`` the stage trains with DDP (``batch_size`` is global).
"""

import argparse
import json
from pathlib import Path

import torch

from marssep_core.config import load_section
from marssep_core.encoders.stages import CHAIN, EncoderConfig, run_chain_stage
from marssep_core.logging_setup import setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=[*CHAIN, "fusion"])
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--bank", type=Path, default=Path("data/audio_bank"))
    parser.add_argument("--pairs", type=Path, default=Path("data/clean/test_pairs.csv"))
    parser.add_argument("--models", type=Path, default=Path("models/encoder"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/encoder"))
    parser.add_argument("--align-metrics", type=Path, default=Path("metrics/align.json"), help="fusion: all stages")
    parser.add_argument("--runs", type=Path, default=Path("runs/encoder"), help="resume checkpoints, one folder per stage")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    setup_logging()
    torch.set_num_threads(args.threads)
    report = run_chain_stage(
        name=args.stage,
        cfg=load_section(EncoderConfig, "encoder", args.params),
        raw_dir=args.raw,
        bank_dir=args.bank,
        pairs_path=args.pairs,
        models_dir=args.models,
        metrics_dir=args.metrics,
        align_metrics=args.align_metrics,
        runs_dir=args.runs,
    )
    if report is not None:  # None on DDP ranks other than 0
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
