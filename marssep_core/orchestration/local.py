"""The local Prefect stack behind ``marssep orchestrate up|down|status|env``: a Prefect server
bound to loopback, a process work pool, the deployments of ``prefect.yaml`` and one worker.

Everything lives under ``<project>/.prefect`` (PREFECT_HOME: the server's SQLite database,
settings) and ``<project>/.prefect/stack`` (``stack.json`` with the PIDs, port and start times;
``server.log``, ``worker.log``). Each process is started in its own session, so stopping it
stops its children; a PID is only signalled while its start time still matches the one recorded
(a reused PID is never killed).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from marssep_core.io_utils import write_json_atomic
from marssep_core.orchestration.commands import tool_env

WORK_POOL = "marssep-local"  # the pool prefect.yaml's deployments name


class StackError(RuntimeError):
    """The stack could not be started or queried; the message names the log to read."""


@dataclass(frozen=True)
class StackConfig:
    project: Path
    port: int = 4200
    host: str = "127.0.0.1"

    @property
    def home(self) -> Path:
        return self.project / ".prefect"

    @property
    def state_dir(self) -> Path:
        return self.home / "stack"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    def env(self) -> dict[str, str]:
        """What every Prefect command of this stack runs with (``marssep orchestrate env``)."""
        return {
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_API_HOST": self.host,
            "PREFECT_SERVER_API_PORT": str(self.port),
            "MARSSEP_PROJECT_DIR": str(self.project),
            "DVC_NO_ANALYTICS": "1",
        }


@dataclass
class ProcessRecord:
    pid: int
    started: str  # /proc/<pid>/stat start time, to recognise the same process later
    log: str


@dataclass
class StackState:
    port: int
    host: str
    processes: dict[str, ProcessRecord] = field(default_factory=dict)


def start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else fields[19]  # state, ..., starttime (field 22 of stat)


def alive(record: ProcessRecord) -> bool:
    return start_time(record.pid) == record.started


def read_state(cfg: StackConfig) -> StackState | None:
    path = cfg.state_dir / "stack.json"
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    return StackState(raw["port"], raw["host"], {k: ProcessRecord(**v) for k, v in raw["processes"].items()})


def write_state(cfg: StackConfig, state: StackState) -> None:
    write_json_atomic(cfg.state_dir / "stack.json", asdict(state))


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def api(cfg: StackConfig, path: str, body: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
    """GET (no body) or POST a JSON request to the stack's Prefect API; the decoded reply."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(cfg.api_url + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read() or b"null")


def _healthy(cfg: StackConfig) -> bool:
    try:
        return api(cfg, "/health", timeout=2.0) is True
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _spawn(cfg: StackConfig, name: str, args: list[str]) -> ProcessRecord:
    log = cfg.state_dir / f"{name}.log"
    with open(log, "ab") as handle:
        proc = subprocess.Popen(args, cwd=cfg.project, env=tool_env(cfg.env()), stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    started = None
    for _ in range(50):  # /proc entry appears with the fork; tolerate a slow scheduler
        started = start_time(proc.pid)
        if started:
            break
        time.sleep(0.02)
    if started is None:
        raise StackError(f"{name} exited at once; see {log}:\n{_tail(log)}")
    return ProcessRecord(proc.pid, started, str(log))


def _wait(condition, timeout: float, what: str, record: ProcessRecord) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if not alive(record):
            raise StackError(f"{what}: the process exited; see {record.log}:\n{_tail(Path(record.log))}")
        time.sleep(0.5)
    raise StackError(f"{what}: not ready after {timeout:.0f} s; see {record.log}:\n{_tail(Path(record.log))}")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) != 0


def _prefect(cfg: StackConfig, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_bin("prefect"), *args], cwd=cfg.project, env=tool_env(cfg.env()), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=300)


def online_workers(cfg: StackConfig) -> list[str]:
    workers = api(cfg, f"/work_pools/{WORK_POOL}/workers/filter", {})
    return [w["name"] for w in workers if w.get("status") == "ONLINE"]


def deployments(cfg: StackConfig) -> list[dict[str, Any]]:
    """The server's deployments as ``{name: FLOW/DEPLOYMENT, schedules: [...], concurrency_limit}``."""
    flows = {f["id"]: f["name"] for f in api(cfg, "/flows/filter", {})}
    return [{"name": f"{flows.get(d['flow_id'], '?')}/{d['name']}", "schedules": d.get("schedules", []),
             # a limit declared in prefect.yaml is stored as a global limit named after the deployment
             "concurrency_limit": (d.get("global_concurrency_limit") or {}).get("limit") or d.get("concurrency_limit"),
             "collision_strategy": (d.get("concurrency_options") or {}).get("collision_strategy"),
             "paused": d.get("paused")}
            for d in api(cfg, "/deployments/filter", {})]


def up(cfg: StackConfig, timeout: float = 120.0) -> StackState:
    """Start server, pool, deployments and worker (whatever of them is not running yet)."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    state = read_state(cfg)
    running = state is not None and any(alive(r) for r in state.processes.values())
    if running and state.port != cfg.port:
        raise StackError(f"a stack of this project is running on port {state.port}; "
                         "`marssep orchestrate down` it before starting one on another port")
    if not running:
        state = StackState(cfg.port, cfg.host)
    server = state.processes.get("server")
    if server is None or not alive(server):
        if not _port_free(cfg.host, cfg.port):
            raise StackError(f"{cfg.host}:{cfg.port} is in use by another program; choose another with --port")
        server = _spawn(cfg, "server", [_bin("prefect"), "server", "start", "--host", cfg.host, "--port", str(cfg.port)])
        state.processes["server"] = server
        write_state(cfg, state)
    _wait(lambda: _healthy(cfg), timeout, f"Prefect server at {cfg.api_url}", server)

    if _prefect(cfg, "work-pool", "inspect", WORK_POOL).returncode != 0:
        created = _prefect(cfg, "work-pool", "create", WORK_POOL, "--type", "process")
        if created.returncode != 0:
            raise StackError(f"work pool {WORK_POOL}: {created.stdout}{created.stderr}")
    deployed = _prefect(cfg, "--no-prompt", "deploy", "--all")
    if deployed.returncode != 0:
        raise StackError(f"prefect deploy --all (prefect.yaml) failed:\n{deployed.stdout[-3000:]}{deployed.stderr[-3000:]}")

    worker = state.processes.get("worker")
    if worker is None or not alive(worker):
        worker = _spawn(cfg, "worker", [_bin("prefect"), "worker", "start", "--pool", WORK_POOL, "--type", "process"])
        state.processes["worker"] = worker
        write_state(cfg, state)
    _wait(lambda: bool(online_workers(cfg)), timeout, f"worker on pool {WORK_POOL}", worker)
    return state


def stop_process(record: ProcessRecord, timeout: float) -> str:
    """SIGTERM the process group, SIGKILL what is left after ``timeout``; how it ended."""
    if not alive(record):
        return "not running"
    os.killpg(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(record):
            return "stopped"
        time.sleep(0.2)
    os.killpg(record.pid, signal.SIGKILL)
    while alive(record):
        time.sleep(0.05)
    return f"killed (still running {timeout:.0f} s after SIGTERM)"


def down(cfg: StackConfig, timeout: float = 30.0) -> dict[str, str]:
    """Stop the worker, then the server. Flow runs in progress on the worker are stopped with it
    (the server marks them crashed); the database stays for the next ``up``."""
    state = read_state(cfg)
    if state is None:
        return {}
    outcome = {}
    for name in ("worker", "server"):
        if name in state.processes:
            outcome[name] = stop_process(state.processes[name], timeout)
    (cfg.state_dir / "stack.json").unlink(missing_ok=True)
    return outcome


def status(cfg: StackConfig) -> dict[str, Any]:
    """Processes (pid, running), server health, online workers and deployments."""
    state = read_state(cfg)
    report: dict[str, Any] = {"api_url": cfg.api_url, "home": str(cfg.home), "processes": {}}
    if state is None:
        return report
    if state.port != cfg.port:
        cfg = StackConfig(cfg.project, state.port, state.host)
        report["api_url"] = cfg.api_url
    report["processes"] = {name: {"pid": r.pid, "running": alive(r), "log": r.log} for name, r in state.processes.items()}
    report["healthy"] = _healthy(cfg)
    if report["healthy"]:
        report["workers"] = online_workers(cfg)
        report["deployments"] = deployments(cfg)
    return report
