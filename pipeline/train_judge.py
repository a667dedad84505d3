"""DVC stage ``train_judge`` (params ``judge``): the independent semantic judge for evaluation.

    python pipeline/train_judge.py
"""

import argparse
import json
import logging
from pathlib import Path

from marssep_core.config import load_section
from marssep_core.evaluation.judge_train import JudgeConfig, run_judge_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--bank", type=Path, default=Path("data/audio_bank"))
    parser.add_argument("--out", type=Path, default=Path("models/judge.pt"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/judge.json"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = run_judge_stage(load_section(JudgeConfig, "judge", args.params), args.raw, args.bank, args.out, args.metrics)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
