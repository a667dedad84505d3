"""DVC stage ``clean``: catalog -> clean+ splits, quarantine, test pairs, metrics (section ``clean``)."""

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from marssep_core.config import CleanConfig, PrepareAudioConfig, load_section
from marssep_core.data.stages import run_clean
from marssep_core.data.validation import ValidationFailed
from marssep_core.logging_setup import setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--catalog", type=Path, default=Path("data/catalog/catalog.parquet"))
    parser.add_argument("--out", type=Path, default=Path("data/clean"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/data.json"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    setup_logging()
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    cfg = load_section(CleanConfig, "clean", args.params)
    max_seconds = load_section(PrepareAudioConfig, "prepare_audio", args.params).max_seconds  # what the audio bank keeps
    result = run_clean(
        raw_dir=args.raw,
        catalog=pd.read_parquet(args.catalog),
        out_dir=args.out,
        metrics_path=args.metrics,
        cfg=cfg,
        max_seconds=max_seconds,
    )
    m = result.metrics
    print(f"clean: kept {m['kept_clips']} ({m['split']}), quarantined {m['quarantined_clips']}, pairs {m['test_pairs']}")


if __name__ == "__main__":
    try:
        main()
    except ValidationFailed as failure:  # a readable report, not a traceback
        print(f"clean failed validation:\n{failure}", file=sys.stderr)
        sys.exit(1)
