"""DVC stage ``train_judge`` (params ``judge``): the independent semantic judge for evaluation.

    python pipeline/train_judge.py

A run killed mid-way resumes from ``--run-dir``/last.pt when started again with the same params.
"""

import argparse
import json
from pathlib import Path

from marssep_core.config import load_section
from marssep_core.evaluation.judge_train import JudgeConfig, run_judge_stage
from marssep_core.logging_setup import setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--bank", type=Path, default=Path("data/audio_bank"))
    parser.add_argument("--out", type=Path, default=Path("models/judge.pt"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/judge.json"))
    parser.add_argument("--run-dir", type=Path, default=Path("runs/train_judge"), help="resume checkpoints")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    setup_logging()
    report = run_judge_stage(
        cfg=load_section(JudgeConfig, "judge", args.params),
        raw_dir=args.raw,
        bank_dir=args.bank,
        out_model=args.out,
        out_metrics=args.metrics,
        run_dir=args.run_dir,
    )
    if report is not None:  # None on DDP ranks other than 0
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
