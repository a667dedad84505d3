"""What the training-stage scripts (``pipeline/train_supervised.py``, ``pipeline/train_rl.py``)
share: the common arguments, logging and CPU threads per process, and the DDP teardown."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch

from marssep_core.logging_setup import setup_logging
from marssep_core.paths import add_path_arguments


def training_parser(doc: str, stage: str) -> argparse.ArgumentParser:
    """A parser with the inputs every training stage reads and its resume folder ``runs/<stage>``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_path_arguments(parser, "raw", "bank", "queries", "params")
    parser.add_argument("--soundfonts", type=Path, default=Path("data/soundfonts"),
                        help="training soundfonts (used when mixing.render_prob > 0)")
    parser.add_argument("--run-dir", type=Path, default=Path("runs") / stage, help="resume checkpoints")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: cores / processes)")
    return parser


def start_process(threads: int | None) -> None:
    """Logging, and the CPU threads of this process (the cores shared by the torchrun processes)."""
    setup_logging()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // world))


def finish_process(report: dict[str, Any] | None) -> None:
    """Print rank 0's report and leave the process group."""
    if report is not None:
        print(json.dumps(report, indent=1))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
