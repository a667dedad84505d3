"""Where the pipeline's shared inputs live by default, and the command-line options that name them.

Imports nothing of the project (scripts and the CLI use it before loading anything heavy)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

DEFAULT_PATHS = {
    "raw": "data/raw",
    "bank": "data/audio_bank",
    "queries": "data/query_bank.pt",
    "pairs": "data/clean/test_pairs.csv",
    "judge": "models/judge.pt",
    "params": "params.yaml",
}


def add_path_arguments(parser: argparse.ArgumentParser, *names: str) -> None:
    """``--<name>`` options for ``names`` (keys of ``DEFAULT_PATHS``), each a ``Path`` with its default."""
    for name in names:
        parser.add_argument(f"--{name}", type=Path, default=Path(DEFAULT_PATHS[name]))


def paths_from(cls: type[T], args: argparse.Namespace) -> T:
    """A stage's paths dataclass filled from the parsed options of the same names."""
    return cls(**{field.name: getattr(args, field.name) for field in dataclasses.fields(cls)})
