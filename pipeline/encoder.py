"""DVC stages ``pretrain_encoder``, ``align_stage1..3`` and ``train_fusion`` (params ``encoder``).

    python pipeline/encoder.py pretrain | stage1 | stage2 | stage3 | fusion
"""

import argparse
import json
import logging
from pathlib import Path

import pandas as pd
import torch

from marssep_core.config import load_section
from marssep_core.encoders.imagebind import PRESETS
from marssep_core.encoders.stages import EncoderConfig, open_data, run_encoder_stage, run_fusion_stage
from marssep_core.io_utils import write_json_atomic

PREVIOUS = {"stage1": "pretrain", "stage2": "stage1", "stage3": "stage2"}
STAGES = ("pretrain", "stage1", "stage2", "stage3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=[*STAGES, "fusion"])
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--bank", type=Path, default=Path("data/audio_bank"))
    parser.add_argument("--pairs", type=Path, default=Path("data/clean/test_pairs.csv"))
    parser.add_argument("--models", type=Path, default=Path("models/encoder"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/encoder"))
    parser.add_argument("--align-metrics", type=Path, default=Path("metrics/align.json"), help="fusion: all stages")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    cfg = load_section(EncoderConfig, "encoder", args.params)
    data = open_data(args.raw, args.bank, PRESETS[cfg.backbone]().image_size)
    if args.stage == "fusion":
        report = run_fusion_stage(args.models / "stage3.pt", data, cfg.fusion, args.models / "mlbp.pt", args.metrics / "fusion.json")
        combined = {s: json.loads((args.metrics / f"{s}.json").read_text()) for s in STAGES}
        write_json_atomic(args.align_metrics, {**combined, "fusion": report})
    else:
        previous = PREVIOUS.get(args.stage)
        report = run_encoder_stage(
            args.stage,
            data,
            pd.read_csv(args.pairs),
            getattr(cfg, args.stage),
            args.models / f"{args.stage}.pt",
            args.metrics / f"{args.stage}_history.csv",
            args.metrics / f"{args.stage}.json",
            start_from=args.models / f"{previous}.pt" if previous else None,
            backbone=cfg.backbone,
            imagebind_checkpoint=cfg.imagebind_checkpoint,
        )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
