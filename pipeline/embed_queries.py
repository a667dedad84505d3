"""DVC stage ``embed_queries``: the query bank (audio, text and picture embeddings) from the
aligned encoder.

    python pipeline/embed_queries.py [--encoder models/encoder/stage3.pt] [--out data/query_bank.pt]
"""

import argparse
import json
from pathlib import Path

import torch

from marssep_core.config import load_section
from marssep_core.logging_setup import setup_logging
from marssep_core.separation.embed_queries import EmbedQueriesConfig, run_embed_queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", type=Path, default=Path("models/encoder/stage3.pt"))
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--bank", type=Path, default=Path("data/audio_bank"))
    parser.add_argument("--out", type=Path, default=Path("data/query_bank.pt"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    setup_logging()
    torch.set_num_threads(args.threads)
    cfg = load_section(EmbedQueriesConfig, "embed_queries", args.params)
    print(json.dumps(run_embed_queries(encoder_path=args.encoder, raw_dir=args.raw, bank_dir=args.bank, out=args.out, cfg=cfg), indent=1))


if __name__ == "__main__":
    main()
