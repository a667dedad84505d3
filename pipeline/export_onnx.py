"""DVC stage ``export_onnx`` (params ``export``): the served ONNX bundle and its parity check.

    python pipeline/export_onnx.py            # -> models/onnx/, metrics/export.json
"""

import argparse
import json
import sys
from pathlib import Path

from marssep_core.config import load_section
from marssep_core.logging_setup import setup_logging
from marssep_core.paths import add_path_arguments
from marssep_core.serving.stage import ExportConfig, ParityError, run_export_stage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("models/onnx"))
    add_path_arguments(parser, "pairs", "bank", "raw", "params")
    parser.add_argument("--metrics", type=Path, default=Path("metrics/export.json"))
    args = parser.parse_args()
    setup_logging()
    cfg = load_section(ExportConfig, "export", args.params)
    try:
        metrics = run_export_stage(
            cfg=cfg, out_dir=args.out, pairs_path=args.pairs, bank_dir=args.bank, raw_dir=args.raw, metrics_path=args.metrics
        )
    except ParityError as err:
        print(f"error: {err} (see {args.metrics})", file=sys.stderr)
        return 1
    print(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
