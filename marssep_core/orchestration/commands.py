"""Run a command line with its output streamed line by line to a logger.

The flows run DVC and ``marssep`` as subprocesses (DVC owns the DAG, the CLI owns batch
semantics); this module makes their output visible in the orchestrator's run logs and turns a
failure into an error that carries the command and the last lines it printed.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TAIL_LINES = 40

# Printed by DVC when another DVC process holds the repository lock (a transient condition: the
# other command finishes). The flows retry on it; other failures are not retried.
DVC_LOCK_MESSAGE = "Unable to acquire lock"


class CommandError(RuntimeError):
    """A command exited with a non-zero status (or was killed by a signal: ``returncode < 0``)."""

    def __init__(self, args: Sequence[str], returncode: int, tail: str):
        self.returncode = returncode
        self.tail = tail
        super().__init__(f"`{' '.join(args)}` exited with status {returncode}; last output:\n{tail}")

    @property
    def dvc_lock_busy(self) -> bool:
        return DVC_LOCK_MESSAGE in self.tail


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str  # stdout and stderr interleaved, as printed


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for DVC/marssep subprocesses: this interpreter's ``bin`` first on PATH (so
    ``dvc`` and ``marssep`` are the project's, whatever started the worker), DVC analytics off."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(extra or {})
    return env


def run_logged(args: Sequence[str], cwd: Path, logger: logging.Logger | logging.LoggerAdapter,
               check: bool = True) -> CommandResult:
    """Run ``args`` in ``cwd``; log each output line at INFO as it comes.

    Returns the exit status and the whole output; with ``check`` a non-zero status raises
    :class:`CommandError` holding the last :data:`TAIL_LINES` lines.
    """
    logger.info("$ %s  (in %s)", " ".join(args), cwd)
    lines: list[str] = []
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    with subprocess.Popen(list(args), cwd=cwd, env=tool_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            tail.append(line)
            logger.info("%s", line)
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, "\n".join(tail))
    return CommandResult(proc.returncode, "\n".join(lines))


def run_json(args: Sequence[str], cwd: Path, logger: logging.Logger | logging.LoggerAdapter) -> Any:
    """Run a command that prints JSON on stdout (``dvc ... --json``); its stderr (warnings) is
    logged, not parsed. Empty stdout reads as ``{}`` (DVC prints nothing when there is no diff)."""
    logger.info("$ %s  (in %s)", " ".join(args), cwd)
    proc = subprocess.run(list(args), cwd=cwd, env=tool_env(), capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        logger.info("%s", line)
    if proc.returncode != 0:
        raise CommandError(args, proc.returncode, "\n".join((proc.stdout + proc.stderr).splitlines()[-TAIL_LINES:]))
    return json.loads(proc.stdout) if proc.stdout.strip() else {}
