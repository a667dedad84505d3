"""The GPU check kit (benchmarks/gpu) cannot rot: its dry run passes here, and everything it imports
is on the device image or among the wheels it carries."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / "benchmarks" / "gpu"


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu_kit") / "result.json"
    done = subprocess.run(["bash", str(KIT / "run.sh"), "--dry-run", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_dry_run_measures_every_section_without_errors(dry_run):
    assert dry_run["dry_run"] and dry_run["environment"]["device"] == "cpu"
    sections = [dry_run["correctness"], dry_run["encoder_throughput"], dry_run["serving"], dry_run["stages_on_device"],
                *dry_run["separator_step"].values(), *dry_run["rl_step"].values(), *dry_run["training_input"].values()]
    errors = [s["error"] for s in sections if "error" in s]
    assert not errors, errors
    assert set(dry_run["training_input"]) == {"data_workers_0", "data_workers_2"}
    for run in [*dry_run["separator_step"].values(), *dry_run["rl_step"].values(), *dry_run["training_input"].values()]:
        # timings on a loaded CPU at these sizes are noise (a difference of two short runs can come
        # out negative): the dry run proves the code path, the device run gives the figures
        assert math.isfinite(run["step_seconds"]) and run["losses_finite"]
    assert set(dry_run["encoder_throughput"]["items_per_second"]) == {"audio", "text", "vision"}
    stages = dry_run["stages_on_device"]
    assert stages["all_ok"], stages  # on the CPU the "device" is the CPU: every difference is 0
    assert stages["query_bank_max_abs_diff"] == 0.0 and stages["separator_estimate_max_abs_diff"] == 0.0
    rows = dry_run["serving"]["rows"]
    assert {r["backend"] for r in rows} == {"torch", "onnx"}
    assert all(r["finite"] for r in rows)
    breakdown = dry_run["serving"]["pass_breakdown"]
    assert breakdown["mask_gflop_per_audio_second"] > 0 and all(v > 0 for k, v in breakdown["seconds"].items() if "host" not in k)


def test_dry_run_correctness_checks_hold(dry_run):
    check = dry_run["correctness"]
    assert check["all_ok"], check
    losses = check["supervised_losses"]
    assert len(losses) >= 5 and losses[-1] < losses[0]
    assert 0.5 < check["rl_decrease_over_first_order_by_step_length"]["0.001"] < 1.5
    assert check["mask_max_abs_diff_vs_float64_cpu"] <= check["mask_tolerance"]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_kit_imports_only_what_the_device_has_or_carries():
    """Third-party distributions imported by check.py (and the serving code it loads) must be on
    the device image (device_image_packages.txt) or fetched by fetch_wheels.sh."""
    probe = (
        "import importlib.metadata as m, sys, runpy\n"
        f"sys.argv = ['check']; sys.path[:0] = [{str(ROOT)!r}, {str(KIT)!r}]\n"
        "import check, marssep_core.serving.bundle, marssep_core.serving.engine, marssep_core.serving.export\n"
        "owners = m.packages_distributions()\n"
        "tops = {n.split('.')[0] for n in sys.modules} - set(sys.stdlib_module_names)\n"
        "print('\\n'.join(sorted({d for t in tops for d in owners.get(t, [])})))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {_normal(d) for d in done.stdout.split()}
    image = {_normal(line) for line in (KIT / "device_image_packages.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    wheels_line = re.search(r"^packages=\((.*)\)$", (KIT / "fetch_wheels.sh").read_text(), re.M)
    carried = {_normal(w) for w in wheels_line.group(1).split()}
    # marssep itself travels as the working tree; pydot is an optional import of torch.onnx
    missing = imported - image - carried - {"marssep", "pydot", "pyparsing"}
    assert not missing, f"the GPU machine lacks {sorted(missing)}: add them to fetch_wheels.sh"
