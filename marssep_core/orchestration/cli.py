"""``marssep orchestrate up|down|status|env``: the local Prefect stack (see ``local.py``).

    marssep orchestrate up              # server on 127.0.0.1:4200, pool, deployments, worker
    eval "$(marssep orchestrate env)"   # this shell's prefect commands talk to that server
    prefect deployment run rl-training/default -p name=kappa5 -p 'overrides={"rl.kappa": 5}'
    marssep orchestrate status          # exit 0 when the server answers, 1 when not
    marssep orchestrate down

Exit status 2: the stack could not be started or queried (the message names the log to read).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from marssep_core.orchestration import local


def add_orchestrate_parser(commands: argparse._SubParsersAction) -> None:
    orchestrate = commands.add_parser("orchestrate", help="local Prefect server + worker with the prefect.yaml deployments")
    actions = orchestrate.add_subparsers(dest="orchestrate_command", required=True)
    for name, text in (("up", "start server, work pool, deployments and worker (what is not running)"),
                       ("down", "stop the worker and the server"),
                       ("status", "processes, health, workers and deployments"),
                       ("env", "print `export` lines for PREFECT_HOME / PREFECT_API_URL (use with eval)")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--project", type=Path, default=Path("."), help="project root holding prefect.yaml")
        action.add_argument("--port", type=int, default=None, help="server port (default: the running stack's, else 4200)")
        if name in ("up", "down"):
            action.add_argument("--timeout", type=float, default=120.0 if name == "up" else 30.0,
                                help="seconds to wait for readiness (up) or for a clean exit before SIGKILL (down)")
        if name == "status":
            action.add_argument("--json", action="store_true", help="machine-readable output")
    orchestrate.set_defaults(run=run_orchestrate)


def _config(args: argparse.Namespace) -> local.StackConfig:
    project = args.project.resolve()
    if not (project / "prefect.yaml").is_file():
        raise local.StackError(f"{project}: no prefect.yaml here; run from the project root or pass --project")
    port = args.port
    if port is None:
        state = local.read_state(local.StackConfig(project))
        port = state.port if state is not None else 4200
    return local.StackConfig(project, port)


def run_orchestrate(args: argparse.Namespace) -> int:
    try:
        cfg = _config(args)
        if args.orchestrate_command == "up":
            state = local.up(cfg, args.timeout)
            pids = ", ".join(f"{name} {record.pid}" for name, record in state.processes.items())
            print(f"Prefect server {cfg.api_url} ({pids}); work pool {local.WORK_POOL}; logs in {cfg.state_dir}")
            print('next: eval "$(marssep orchestrate env)"; prefect deployment ls')
        elif args.orchestrate_command == "down":
            outcome = local.down(cfg, args.timeout)
            print("\n".join(f"{name}: {how}" for name, how in outcome.items()) or "nothing was running")
        elif args.orchestrate_command == "env":
            print("\n".join(f"export {key}={shlex.quote(value)}" for key, value in cfg.env().items()))
        else:
            report = local.status(cfg)
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                _print_status(report)
            return 0 if report.get("healthy") else 1
    except local.StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _print_status(report: dict) -> None:
    print(f"api {report['api_url']} ({'healthy' if report.get('healthy') else 'not answering'}), home {report['home']}")
    for name, proc in report["processes"].items():
        print(f"  {name}: pid {proc['pid']} {'running' if proc['running'] else 'not running'} (log {proc['log']})")
    if report.get("healthy"):
        print(f"  workers online: {', '.join(report['workers']) or 'none'}")
        for deployment in report["deployments"]:
            crons = [s["schedule"].get("cron") for s in deployment["schedules"] if s.get("schedule")]
            extra = f", cron {', '.join(filter(None, crons))}" if any(crons) else ""
            limit = deployment["concurrency_limit"]
            print(f"  deployment {deployment['name']}{extra}{f', concurrency {limit}' if limit else ''}")
