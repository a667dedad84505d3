"""DVC stage ``ingest``: data/raw -> data/catalog/catalog.parquet (params section ``ingest``)."""

import argparse
import logging
import sys
from pathlib import Path

from marssep_core.config import IngestConfig, load_section
from marssep_core.data.stages import run_ingest
from marssep_core.data.validation import ValidationFailed
from marssep_core.logging_setup import setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--out", type=Path, default=Path("data/catalog"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    setup_logging()
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    catalog = run_ingest(args.raw, args.out, load_section(IngestConfig, "ingest", args.params))
    print(f"ingest: {len(catalog)} clips catalogued into {args.out}")


if __name__ == "__main__":
    try:
        main()
    except ValidationFailed as failure:  # a readable report, not a traceback
        print(f"ingest failed validation:\n{failure}", file=sys.stderr)
        sys.exit(1)
