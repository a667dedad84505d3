"""``batch-separation``: every manifest dropped into an inbox folder is separated by
``marssep separate`` and filed under done/ or failed/ with its results (layout and guarantees:
``marssep_core/orchestration/inbox.py``). Manifests fan out as mapped tasks; how many run at
once is ``MARSSEP_BATCH_PARALLEL`` (default 1: one ``marssep separate`` already uses the cores)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_table_artifact
from prefect.states import Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from marssep_core.orchestration.commands import CommandError, run_logged
from marssep_core.orchestration.inbox import Inbox, InboxBusy, describe_outcome


def _killed(task, task_run, state) -> bool:
    """Retry a run the OS killed (a signal: out of memory, a restarted node); a manifest that
    fails on its own merits fails the same way again and is filed under failed/ instead."""
    error = state.data
    return isinstance(error, CommandError) and error.returncode < 0


@task(retries=1, retry_delay_seconds=30, retry_condition_fn=_killed)
def separate_manifest(project_dir: str, manifest: str, relative_to: str, out_dir: str, options: list[str]) -> dict:
    args = [sys.executable, "-m", "marssep_core.cli", "separate", "--manifest", manifest, "--relative-to", relative_to,
            "--out", out_dir, *options]
    result = run_logged(args, Path(project_dir), get_run_logger(), check=False)
    if result.returncode < 0:
        raise CommandError(args, result.returncode, result.output[-4000:])
    return {"returncode": result.returncode, "output": result.output[-20000:]}


@flow(name="batch-separation", task_runner=ThreadPoolTaskRunner(max_workers=int(os.environ.get("MARSSEP_BATCH_PARALLEL", "1"))))
def batch_separation(inbox: str = "inbox", out: str = "separated", project_dir: str = ".", backend: str = "onnx",
                     model: str | None = None, device: str = "auto", extra_args: list[str] | None = None):
    """Separate the manifests in ``inbox`` into ``out/<job>/``; file each under inbox/done or
    inbox/failed (with ``<job>.reason.txt``). Relative paths inside a manifest are relative to the
    inbox. Ends Failed when any manifest failed (after filing every one)."""
    logger = get_run_logger()
    project = Path(project_dir).resolve()
    box = Inbox(project / inbox)
    options = ["--backend", backend, "--device", device, *(["--model", model] if model else []), *(extra_args or [])]
    try:
        with box.locked():
            claims = box.claim_all()
            if not claims:
                logger.info("no manifests in %s", box.root)
                return Completed(message="inbox empty")
            futures = separate_manifest.map(unmapped(str(project)), [str(c.manifest) for c in claims],
                                            unmapped(str(box.root)), [str(project / out / c.job) for c in claims],
                                            unmapped(options))
            rows = []
            for claim, future in zip(claims, futures):
                future.wait()
                state = future.state
                if state.is_completed():
                    outcome = future.result()
                    ok, reason = describe_outcome(outcome["returncode"], outcome["output"])
                else:
                    ok, reason = False, f"marssep separate did not finish: {state.message}"
                filed = box.finish(claim, ok, project / out / claim.job / "results.csv", reason)
                rows.append({"job": claim.job, "status": "done" if ok else "failed", "filed": str(filed),
                             "output": str(project / out / claim.job), "reason": reason})
    except InboxBusy as err:
        logger.warning("%s; leaving this run", err)
        return Completed(message=str(err))
    create_table_artifact(rows, key="batch-separation-manifests", description=f"{len(rows)} manifests from {box.root}")
    failed = [row["job"] for row in rows if row["status"] == "failed"]
    if failed:
        return Failed(message=f"{len(failed)} of {len(rows)} manifests failed ({', '.join(failed)}); see {box.failed}")
    return Completed(message=f"{len(rows)} manifests separated")
