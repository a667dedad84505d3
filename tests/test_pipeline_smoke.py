"""End-to-end smoke: ``dvc repro`` of the real dvc.yaml on the tiny corpus and a tiny profile
(few training steps), metrics, push, pull."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import yaml

from marssep_core.audio.io import save_audio
from tests.conftest import TINY_JUDGE_PARAMS, TINY_RL_PARAMS, TINY_SEPARATOR_PARAMS, make_tiny_corpus, synth_clip

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path) -> str:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_dvc_repro_on_tiny_profile(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "pipeline"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, project / name)
    # marssep_core is a dependency path of the stages: link the real package in.
    (project / "marssep_core").symlink_to(ROOT / "marssep_core")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ingest"]["workers"] = 1
    params["clean"]["label_filter"].update(folds=3, top_k=1, min_class_clips=8)
    params["clean"]["test_pairs"].update(pairs_per_corpus=12, crop_seconds=0.5)
    params["prepare_audio"]["workers"] = 1
    for stage in ("pretrain", "stage1", "stage2", "stage3"):
        params["encoder"][stage].update(steps=3, batch_size=8, eval_every=3, warmup=1)
    params["encoder"]["fusion"].update(steps=3, batch_size=8)
    params["train_supervised"] = json.loads(json.dumps(TINY_SEPARATOR_PARAMS))
    for block, values in TINY_JUDGE_PARAMS.items():  # merged: the experiment below sets judge.train.seed
        params["judge"][block].update(values)
    params["evaluate"].update(workers=1, figures_per_corpus=1)
    params["rl"].update(json.loads(json.dumps(TINY_RL_PARAMS)))
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    make_tiny_corpus(project / "data" / "raw")

    _run(["git", "init", "-q"], project)
    _run(["dvc", "init", "-q"], project)
    _run(["dvc", "remote", "add", "-d", "store", str(tmp_path / "remote")], project)
    _run(["dvc", "add", "-q", "data/raw"], project)
    _run(["dvc", "repro"], project)

    metrics = json.loads(_run(["dvc", "metrics", "show", "--json"], project))
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
    _run([sys.executable, "-m", "marssep_core.cli", "separate", str(tmp_path / "mix.wav"), "--text", "a tone sound",
          "--out", str(tmp_path / "served")], project)
    assert sf.info(tmp_path / "served" / "mix.wav").frames == 24000
    # nothing left to do: a second repro reproduces no stage
    assert "Running stage" not in _run(["dvc", "repro"], project)
    assert "up to date" in _run(["dvc", "status"], project)

    # the documented experiment workflow: a params change, then `dvc metrics diff` lists eval keys
    _run(["git", "add", "-A"], project)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"], project)
    _run(["dvc", "exp", "run", "-S", "judge.train.seed=8"], project)
    diff = json.loads(_run(["dvc", "metrics", "diff", "--json"], project))
    assert "all.supervised.text.clap_t" in diff["metrics/eval.json"]
    _run(["git", "checkout", "--", "."], project)
    _run(["dvc", "checkout", "-q"], project)

    _run(["dvc", "push"], project)
    shutil.rmtree(project / "data" / "catalog")
    shutil.rmtree(project / ".dvc" / "cache")
    _run(["dvc", "pull"], project)
    assert (project / "data" / "catalog" / "catalog.parquet").is_file()
