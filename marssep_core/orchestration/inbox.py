"""A manifest inbox for scheduled batch separation.

Layout under the inbox directory::

    inbox/<job>.csv            dropped here by users (write elsewhere, then rename in)
    inbox/processing/<job>.csv claimed by a run (moved atomically out of the inbox)
    inbox/done/<job>.csv       every row separated; <job>.results.csv beside it
    inbox/failed/<job>.csv     a row failed or the manifest could not run; <job>.reason.txt
                               says why, <job>.results.csv holds the rows when there are any

A manifest is claimed by ``rename`` (atomic within one filesystem) before anything reads it, so
no two runs see the same file and nothing finished is picked up again. Runs also hold an
exclusive lock on ``inbox/.lock`` while they claim and process: a second run that starts while
one is active finds the lock taken and leaves (the scheduled deployment also limits itself to
one run at a time). Manifests left in ``processing/`` by a run that died are taken up again by
the next run; ``marssep separate`` skips the rows whose outputs already exist, so resuming redoes
no finished row.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from marssep_core.io_utils import write_text_atomic


class InboxBusy(RuntimeError):
    """Another run holds the inbox lock."""


@dataclass(frozen=True)
class Claim:
    """A manifest moved into ``processing/``; ``job`` names its output folder and its files in
    done/ or failed/."""

    job: str
    manifest: Path


@dataclass(frozen=True)
class Inbox:
    root: Path

    @property
    def processing(self) -> Path:
        return self.root / "processing"

    @property
    def done(self) -> Path:
        return self.root / "done"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the inbox lock for the block; :class:`InboxBusy` if another run has it."""
        for folder in (self.root, self.processing, self.done, self.failed):
            folder.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InboxBusy(f"{self.root}: another batch-separation run holds {self.root / '.lock'}") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def pending(self) -> list[Path]:
        """Manifests waiting in the inbox: visible ``*.csv`` regular files, in name order."""
        return sorted(p for p in self.root.glob("*.csv") if p.is_file() and not p.name.startswith("."))

    def _job_name(self, stem: str) -> str:
        """``stem``, or ``stem.<UTC time>`` when a manifest of that name was handled before (a
        re-dropped manifest is a new job; the earlier results stay as they are)."""
        taken = any((folder / f"{stem}.csv").exists() for folder in (self.processing, self.done, self.failed))
        return f"{stem}.{datetime.now(UTC):%Y%m%dT%H%M%S%f}" if taken else stem

    def claim_all(self) -> list[Claim]:
        """Claims for the manifests a dead run left in ``processing/``, then for every pending
        manifest (each moved into ``processing/``). Call it holding :meth:`locked`."""
        claims = [Claim(p.stem, p) for p in sorted(self.processing.glob("*.csv")) if not p.name.startswith(".")]
        for manifest in self.pending():
            job = self._job_name(manifest.stem)
            target = self.processing / f"{job}.csv"
            try:
                os.rename(manifest, target)
            except FileNotFoundError:  # removed by its owner between listing and claiming
                continue
            claims.append(Claim(job, target))
        return claims

    def finish(self, claim: Claim, ok: bool, results: Path | None, reason: str = "") -> Path:
        """Move a claimed manifest to done/ (``ok``) or failed/, with a copy of its results table
        and, for failed/, the reason. Returns the manifest's new path."""
        folder = self.done if ok else self.failed
        if results is not None and results.is_file():
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(results, folder / f".{claim.job}.results.csv.tmp")
                os.replace(folder / f".{claim.job}.results.csv.tmp", folder / f"{claim.job}.results.csv")
        if not ok:
            write_text_atomic(folder / f"{claim.job}.reason.txt", reason.rstrip("\n") + "\n")
        # The manifest moves last: while it is still in processing/, a crash above is resumed.
        destination = folder / f"{claim.job}.csv"
        os.replace(claim.manifest, destination)
        return destination


def describe_outcome(returncode: int, output: str) -> tuple[bool, str]:
    """(done?, reason) for a ``marssep separate --manifest`` run from its exit status and output:
    0 every row separated or already done; 1 some rows failed (their ``failed <id>: ...`` lines
    and the summary); 2 nothing could start (its ``error: ...`` line: bad manifest, model, device)."""
    lines = output.splitlines()
    if returncode == 0:
        return True, ""
    if returncode == 1:
        failures = [line for line in lines if line.startswith("failed ")]
        summary = [line for line in lines if " separated, " in line][-1:]
        return False, "\n".join(summary + failures) or f"exit status 1:\n{output[-2000:]}"
    errors = [line for line in lines if line.startswith("error:")]
    return False, "\n".join(errors) or f"exit status {returncode}:\n{output[-2000:]}"
