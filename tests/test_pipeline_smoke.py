"""End-to-end smoke: ``dvc repro`` of the real dvc.yaml on the tiny corpus and a tiny profile
(few training steps; the ``tiny_project`` fixture), metrics, serving, experiments, push, pull."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import soundfile as sf

from marssep_core.audio.io import save_audio
from tests.conftest import copy_project, run_tool, synth_clip


@pytest.mark.slow
def test_dvc_repro_on_tiny_profile(tiny_project, tmp_path):
    project = copy_project(tiny_project, tmp_path / "project")
    metrics = json.loads(run_tool(["dvc", "metrics", "show", "--json"], project))
    data = next(iter(metrics.values()))["data"]["metrics/data.json"]["data"]
    assert data["catalog_clips"] == 60
    assert data["kept_clips"] + data["quarantined_clips"] == 60
    assert data["test_pairs"] == {"inst": 12, "sounds": 12}
    align = json.loads((project / "metrics" / "align.json").read_text())
    assert set(align) == {"pretrain", "stage1", "stage2", "stage3", "fusion"}
    assert (project / "models" / "encoder" / "mlbp.pt").is_file()
    supervised = json.loads((project / "metrics" / "supervised.json").read_text())
    assert supervised["steps"] == 6 and "oracle_irm" in supervised["test"]
    assert (project / "models" / "separator_sup.pt").is_file()
    evaluation = json.loads((project / "metrics" / "eval.json").read_text())
    assert evaluation["errors.failed"] == 0 and evaluation["errors.units"] == 24 * 4 * 4  # mixture, supervised, rl, oracle
    assert "all.rl.text.sdr" in evaluation and "paired.rl_minus_supervised.sdr.text.mean" in evaluation
    rl = json.loads((project / "metrics" / "rl.json").read_text())
    assert rl["steps"] == 4 and (project / "models" / "separator_rl.pt").is_file()
    assert {"inst.supervised.text.sdr", "sounds.oracle_irm.omni.clap_t_sem", "all.mixture.image.leakage"} <= set(evaluation)
    assert "Table 1" in (project / "reports" / "eval.md").read_text()
    export = json.loads((project / "metrics" / "export.json").read_text())
    assert export["passed"] and export["towers"] == ["audio", "text", "vision"]
    assert max(export["parity"].values()) < 1e-3
    # the served bundle the pipeline produced separates a file on onnxruntime
    save_audio(tmp_path / "mix.wav", synth_clip("tone", 1, 1.5) + synth_clip("noise", 2, 1.5), 16000)
    run_tool([sys.executable, "-m", "marssep_core.cli", "separate", str(tmp_path / "mix.wav"), "--text", "a tone sound",
          "--out", str(tmp_path / "served")], project)
    assert sf.info(tmp_path / "served" / "mix.wav").frames == 24000
    # nothing left to do: a second repro reproduces no stage
    assert "Running stage" not in run_tool(["dvc", "repro"], project)
    assert "up to date" in run_tool(["dvc", "status"], project)

    # the documented experiment workflow (the fixture committed the baseline): a params change,
    # then `dvc metrics diff` lists eval keys
    run_tool(["dvc", "exp", "run", "-S", "judge.train.loop.seed=8"], project)
    diff = json.loads(run_tool(["dvc", "metrics", "diff", "--json"], project))
    assert "all.supervised.text.clap_t" in diff["metrics/eval.json"]
    run_tool(["git", "checkout", "--", "."], project)
    run_tool(["dvc", "checkout", "-q"], project)

    run_tool(["dvc", "push"], project)
    shutil.rmtree(project / "data" / "catalog")
    shutil.rmtree(project / ".dvc" / "cache")
    run_tool(["dvc", "pull"], project)
    assert (project / "data" / "catalog" / "catalog.parquet").is_file()
