"""Atomic file writes: a reader (or a crash) never sees a half-written output.

Every writer goes to a temporary file in the destination directory and is renamed into place with
``os.replace`` (atomic on POSIX within one filesystem).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; rename it onto ``dest`` if the block succeeds.

    The temporary name keeps ``dest``'s suffix so libraries that pick a format from the
    extension (soundfile, pandas, Pillow) still do.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600; outputs are ordinary readable files
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes_atomic(dest: str | Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(dest: str | Path, text: str) -> None:
    write_bytes_atomic(dest, text.encode("utf-8"))


def write_json_atomic(dest: str | Path, obj: Any) -> None:
    write_text_atomic(dest, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_table_atomic(dest: str | Path, frame: pd.DataFrame) -> None:
    """Write a DataFrame as parquet or CSV (chosen by suffix), without the index."""
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        if dest.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif dest.suffix == ".csv":
            frame.to_csv(tmp, index=False, lineterminator="\n")
        else:
            raise ValueError(f"{dest}: unsupported table format (use .parquet or .csv)")


def md5_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def replace_dir(staging: Path, dest: Path) -> None:
    """Put the finished folder ``staging`` at ``dest`` with two renames (same file system): a reader
    sees the old tree or the new one, never a mix; the old tree is removed last. A leftover of an
    interrupted swap (``.<name>.old-<hash>``) is removed first."""
    staging, dest = Path(staging), Path(dest)
    old = dest.with_name(f".{dest.name}.old-{hashlib.md5(str(dest).encode()).hexdigest()[:8]}")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    staging.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
