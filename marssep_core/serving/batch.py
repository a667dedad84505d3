"""Batch separation jobs: a manifest of (mixture, query) rows -> ``OUT/<id>.<fmt>`` + ``results.csv``.

Manifest columns: ``id, mixture, query_text, query_audio, query_image`` (query columns may be
empty, at least one set per row; relative paths are relative to the manifest's directory, or to
``base_dir`` when given: the batch inbox moves manifests but resolves against the inbox).

Semantics a batch user can rely on:
- every output is written to a temporary file in ``OUT`` and renamed when complete, so a killed
  job leaves no partial ``<id>`` file (only a hidden ``.<id>.*.tmp.*`` file, removed by the next
  run);
- a row whose output exists is skipped (re-running a manifest is idempotent) unless ``overwrite``;
- a bad row (bad id, duplicate id, no query, missing/empty/undecodable mixture or reference
  audio, NaN or infinite samples, unreadable image, input outside ``input_root``) is recorded with
  its error and the others go on; so is any unexpected error in one row (kind ``error``);
- ids name files inside ``OUT``: anything but letters, digits, ``.``, ``_``, ``-`` (so ``/``
  and ``..``) is rejected, never rewritten, so two ids cannot silently land on one file.
``results.csv`` (id, status, error, seconds, provider, output) is rewritten atomically after
every row, so it is complete up to the last finished row even if the job is killed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError

from marssep_core.audio.io import AudioDecodeError, probe_audio
from marssep_core.io_utils import write_table_atomic
from marssep_core.serving.api import full_query
from marssep_core.serving.engine import Engine
from marssep_core.torch_utils import CheckpointError

MANIFEST_COLUMNS = ("id", "mixture", "query_text", "query_audio", "query_image")
RESULT_COLUMNS = ("id", "status", "error", "seconds", "provider", "output")
ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")


class ManifestError(ValueError):
    """The manifest as a whole is unusable (missing, unreadable, missing columns)."""


@dataclass(frozen=True)
class Job:
    """One row: an output id, a mixture and the query parts (lists may hold several items)."""

    id: str
    mixture: Path
    text: list[str] = field(default_factory=list)
    audio: list[Path] = field(default_factory=list)
    image: list[Path] = field(default_factory=list)
    negative_text: list[str] = field(default_factory=list)
    negative_audio: list[Path] = field(default_factory=list)
    negative_image: list[Path] = field(default_factory=list)


class JobError(ValueError):
    """A row that cannot be processed; ``kind`` classifies it in ``results.csv``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def read_manifest(path: Path, base_dir: Path | None = None) -> list[Job]:
    """Parse ``path`` into jobs (rows are checked when they run, so one bad row stops nothing);
    relative paths are taken from ``base_dir`` (default: the manifest's directory)."""
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ManifestError(f"{path}: not a readable CSV ({err})") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise ManifestError(f"{path}: missing columns {missing} (expected {list(MANIFEST_COLUMNS)})")
    base = path.parent if base_dir is None else base_dir

    def resolve(value: str) -> list[Path]:
        return [base / value.strip()] if value.strip() else []

    return [
        Job(id=row["id"].strip(), mixture=base / row["mixture"].strip(),
            text=[row["query_text"].strip()] if row["query_text"].strip() else [],
            audio=resolve(row["query_audio"]), image=resolve(row["query_image"]))
        for row in table.to_dict("records")
    ]


def check_id(job_id: str) -> None:
    if not ID_PATTERN.fullmatch(job_id) or ".." in job_id:
        raise JobError("bad_id", f"id {job_id!r}: ids name files inside the output directory; "
                                 "use 1-200 letters, digits, '.', '_' or '-' (no '/', no '..', not starting with '.')")


def _check_inputs(job: Job, input_root: Path | None) -> None:
    if not (job.text or job.audio or job.image):
        raise JobError("empty_query", f"{job.id}: no query (query_text, query_audio and query_image are all empty)")
    paths = [job.mixture, *job.audio, *job.image, *job.negative_audio, *job.negative_image]
    if input_root is not None:
        root = input_root.resolve()
        for path in paths:
            if not path.resolve().is_relative_to(root):
                raise JobError("outside_input_root", f"{path}: outside --input-root {input_root}")
    for path in [job.mixture, *job.audio, *job.negative_audio]:
        try:
            probe_audio(path)
        except AudioDecodeError as err:
            raise JobError(err.kind, str(err)) from None
    for path in [*job.image, *job.negative_image]:
        try:
            with Image.open(path) as picture:
                picture.convert("RGB")
        except FileNotFoundError:
            raise JobError("missing_file", f"{path}: file not found") from None
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise JobError("bad_image", f"{path}: unreadable image ({err})") from None


def _query(engine: Engine, job: Job) -> torch.Tensor:
    try:
        return full_query(
            encoder=engine.encoder,
            text=job.text or None,
            audio=job.audio or None,
            image=job.image or None,
            negative_text=job.negative_text or None,
            negative_audio=job.negative_audio or None,
            negative_image=job.negative_image or None,
        )
    except AudioDecodeError as err:
        raise JobError(err.kind, str(err)) from None
    except CheckpointError as err:
        raise JobError("unsupported_query", str(err)) from None


def remove_stale_temporaries(out_dir: Path) -> int:
    """Delete ``.<name>.*.tmp.*`` files a killed run left in ``out_dir``; returns how many."""
    stale = [p for p in out_dir.glob(".*.tmp.*") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


@dataclass
class BatchOptions:
    out_dir: Path
    format: str = "wav"
    subtype: str | None = None
    overwrite: bool = False
    input_root: Path | None = None


def run_batch(engine: Engine, jobs: Iterable[Job], options: BatchOptions,
              progress: Callable[[Iterable[Job]], Iterable[Job]] = lambda jobs: jobs) -> pd.DataFrame:
    """Run every job; returns (and keeps writing) the ``results.csv`` table."""
    options.out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(options.out_dir)
    results_path = options.out_dir / "results.csv"
    rows: list[dict] = []
    seen: set[str] = set()
    for job in progress(list(jobs)):
        started = time.perf_counter()
        row = {"id": job.id, "status": "ok", "error": "", "seconds": 0.0, "provider": engine.provider, "output": ""}
        try:
            check_id(job.id)
            if job.id in seen:
                raise JobError("duplicate_id", f"id {job.id!r} appears more than once; only its first row runs")
            seen.add(job.id)
            dest = options.out_dir / f"{job.id}.{options.format}"
            row["output"] = dest.name
            if dest.exists() and not options.overwrite:
                row["status"] = "skipped"
            else:
                _check_inputs(job, options.input_root)
                engine.separate_file(job.mixture, dest, _query(engine, job), options.subtype)
        except (JobError, AudioDecodeError) as err:  # both carry a kind
            row.update(status="failed", error=f"{err.kind}: {err}", output="")
        except Exception as err:  # anything else in one row (a model error, a full disk) fails that row only
            row.update(status="failed", error=f"error: {type(err).__name__}: {err}", output="")
        row["seconds"] = round(time.perf_counter() - started, 3)
        rows.append(row)
        write_table_atomic(results_path, pd.DataFrame(rows, columns=list(RESULT_COLUMNS)))
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
