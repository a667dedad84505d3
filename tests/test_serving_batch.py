"""``marssep separate --manifest``: bad rows, idempotent re-runs, path rules, killed jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from marssep_core.audio.io import save_audio
from marssep_core.cli import main
from marssep_core.serving.batch import JobError, check_id, read_manifest
from tests.conftest import synth_clip

REPO = Path(__file__).resolve().parents[1]


def _write_manifest(path: Path, rows: list[dict]) -> Path:
    columns = ["id", "mixture", "query_text", "query_audio", "query_image"]
    pd.DataFrame([{c: row.get(c, "") for c in columns} for row in rows], columns=columns).to_csv(path, index=False)
    return path


@pytest.fixture()
def inbox(tmp_path, separator_assets) -> Path:
    """Inputs of every kind, good and bad, next to the manifest (relative paths)."""
    box = tmp_path / "inbox"
    box.mkdir()
    save_audio(box / "mix.wav", synth_clip("tone", 1, 1.5) + synth_clip("noise", 2, 1.5), 16000)
    save_audio(box / "stereo.flac", np.stack([synth_clip("chirp", 3, 1.2)] * 2), 16000)
    save_audio(box / "ref.wav", synth_clip("tone", 4), 16000)
    (box / "garbage.wav").write_bytes(b"RIFF this is not audio at all" * 10)
    (box / "empty.wav").write_bytes(b"")
    (box / "broken.png").write_bytes(b"\x89PNG not really")
    picture = next((separator_assets.raw / "images").rglob("*.png"))
    (box / "picture.png").write_bytes(picture.read_bytes())
    return box


def _run(manifest: Path, out: Path, bundle: Path, *extra: str) -> int:
    return main(["separate", "--manifest", str(manifest), "--out", str(out), "--model", str(bundle), "--device", "cpu",
                 *extra])


def test_bad_rows_are_recorded_and_the_rest_go_on(inbox, tiny_bundle, tmp_path, capsys):
    outside = tmp_path / "elsewhere.wav"
    save_audio(outside, synth_clip("noise", 5), 16000)
    manifest = _write_manifest(inbox / "jobs.csv", [
        {"id": "text-query", "mixture": "mix.wav", "query_text": "a tone sound"},
        {"id": "all-queries", "mixture": "stereo.flac", "query_text": "chirp", "query_audio": "ref.wav",
         "query_image": "picture.png"},
        {"id": "missing", "mixture": "absent.wav", "query_text": "x"},
        {"id": "undecodable", "mixture": "garbage.wav", "query_text": "x"},
        {"id": "empty-file", "mixture": "empty.wav", "query_text": "x"},
        {"id": "no-query", "mixture": "mix.wav"},
        {"id": "bad-image", "mixture": "mix.wav", "query_image": "broken.png"},
        {"id": "bad-reference", "mixture": "mix.wav", "query_audio": "garbage.wav"},
        {"id": "../escape", "mixture": "mix.wav", "query_text": "x"},
        {"id": "sub/dir", "mixture": "mix.wav", "query_text": "x"},
        {"id": "text-query", "mixture": "mix.wav", "query_text": "again"},
        {"id": "outside-root", "mixture": str(outside), "query_text": "x"},
    ])
    out = tmp_path / "out"
    assert _run(manifest, out, tiny_bundle, "--input-root", str(inbox)) == 1
    results = pd.read_csv(out / "results.csv", keep_default_na=False).set_index("id")
    kinds = results["error"].str.split(":").str[0]
    assert results.loc["text-query", "status"].tolist() == ["ok", "failed"]  # the duplicate row fails
    assert results.loc["all-queries", "status"] == "ok"
    expected = {"missing": "missing_file", "undecodable": "decode_error", "empty-file": "empty_file",
                "no-query": "empty_query", "bad-image": "bad_image", "bad-reference": "decode_error",
                "../escape": "bad_id", "sub/dir": "bad_id", "outside-root": "outside_input_root"}
    for job_id, kind in expected.items():
        assert results.loc[job_id, "status"] == "failed" and kinds[job_id] == kind, (job_id, results.loc[job_id])
    assert "absent.wav: file not found" in results.loc["missing", "error"]
    assert sorted(p.name for p in out.iterdir()) == ["all-queries.wav", "results.csv", "text-query.wav"]
    assert not (tmp_path / "escape.wav").exists() and not (tmp_path / "sub").exists()
    left = sf.info(out / "all-queries.wav")
    assert (left.samplerate, left.channels) == (16000, 2) and set(results["provider"]) == {"CPUExecutionProvider"}
    err = capsys.readouterr().err
    assert "2 separated, 0 already done, 10 failed" in err and "failed missing: missing_file" in err


def test_rerunning_a_manifest_skips_finished_rows_unless_overwrite(inbox, tiny_bundle, tmp_path):
    manifest = _write_manifest(inbox / "jobs.csv", [
        {"id": "a", "mixture": "mix.wav", "query_text": "a tone sound"},
        {"id": "b", "mixture": "mix.wav", "query_text": "a noise sound"},
    ])
    out = tmp_path / "out"
    assert _run(manifest, out, tiny_bundle, "--format", "flac", "--subtype", "PCM_16") == 0
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("*.flac")}
    assert sorted(first) == ["a.flac", "b.flac"] and sf.info(out / "a.flac").subtype == "PCM_16"
    time.sleep(0.01)
    assert _run(manifest, out, tiny_bundle, "--format", "flac") == 0
    assert pd.read_csv(out / "results.csv")["status"].tolist() == ["skipped", "skipped"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.flac")} == first
    assert _run(manifest, out, tiny_bundle, "--format", "flac", "--overwrite") == 0
    assert pd.read_csv(out / "results.csv")["status"].tolist() == ["ok", "ok"]
    assert all(out.joinpath(name).stat().st_mtime_ns > mtime for name, mtime in first.items())


def test_id_rules():
    for good in ("a", "clip_01", "take-2.v3", "A.b_c-d"):
        check_id(good)
    for bad in ("", "../x", "a/b", "a\\b", ".hidden", "x..y", "with space", "x" * 201):
        with pytest.raises(JobError, match="ids name files inside"):
            check_id(bad)


def test_relative_paths_resolve_against_relative_to(tmp_path):
    manifest = _write_manifest(tmp_path / "elsewhere.csv", [{"id": "a", "mixture": "m.wav", "query_audio": "r.wav"}])
    (job,) = read_manifest(manifest)
    assert job.mixture == tmp_path / "m.wav" and job.audio == [tmp_path / "r.wav"]
    (job,) = read_manifest(manifest, base_dir=tmp_path / "inbox")
    assert job.mixture == tmp_path / "inbox" / "m.wav" and job.audio == [tmp_path / "inbox" / "r.wav"]


def test_a_manifest_that_cannot_be_used_exits_2(tmp_path, tiny_bundle, capsys):
    assert _run(tmp_path / "absent.csv", tmp_path / "out", tiny_bundle) == 2
    (tmp_path / "cols.csv").write_text("id,mixture\na,b.wav\n")
    assert _run(tmp_path / "cols.csv", tmp_path / "out", tiny_bundle) == 2
    err = capsys.readouterr().err
    assert "absent.csv: manifest not found" in err and "missing columns ['query_text', 'query_audio', 'query_image']" in err


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_batch_leaves_no_partial_output(tmp_path, tiny_bundle, sig):
    box = tmp_path / "inbox"
    box.mkdir()
    seconds = 240.0
    rng = np.random.default_rng(0)
    save_audio(box / "long.wav", (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000)
    manifest = _write_manifest(box / "jobs.csv", [{"id": f"job{i}", "mixture": "long.wav", "query_text": "noise"}
                                                  for i in range(3)])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "marssep_core.cli", "separate", "--manifest", str(manifest), "--out", str(out),
               "--model", str(tiny_bundle), "--device", "cpu"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(out.glob(".*.tmp.*")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.005)
    assert process.poll() is None, "the job finished before it could be interrupted"
    os.kill(process.pid, sig)
    code = process.wait(timeout=60)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    for output in out.glob("job*.wav"):  # whatever has its final name is complete
        assert sf.info(output).frames == int(seconds * 16000)
    temporaries = list(out.glob(".*.tmp.*"))
    assert (len(temporaries) <= 1) if sig == signal.SIGKILL else not temporaries  # SIGTERM cleans up itself
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert not list(out.glob(".*.tmp.*"))
    assert sorted(p.name for p in out.glob("job*.wav")) == ["job0.wav", "job1.wav", "job2.wav"]
    assert all(sf.info(p).frames == int(seconds * 16000) for p in out.glob("job*.wav"))


def test_short_and_non_finite_mixtures_and_unexpected_errors_stop_no_batch(tmp_path, tiny_bundle):
    import dataclasses

    from marssep_core.serving.batch import BatchOptions, Job, run_batch
    from marssep_core.serving.engine import load_engine

    short = [(f"n{samples}-{rate}", samples, rate) for rate in (16000, 44100) for samples in (1, 300, 511, 1500)]
    for name, samples, rate in short:
        save_audio(tmp_path / f"{name}.wav", synth_clip("tone", 1, 1.0)[:samples], rate)
    for name, value in (("nan", np.nan), ("inf", np.inf)):
        bad = synth_clip("tone", 2, 1.0)
        bad[8000] = value
        sf.write(tmp_path / f"{name}.wav", bad, 16000, subtype="FLOAT")
    save_audio(tmp_path / "good.wav", synth_clip("noise", 3, 1.0), 16000)
    names = [name for name, _, _ in short[:4]] + ["nan", "inf"] + [name for name, _, _ in short[4:]] + ["good"]
    jobs = [Job(name, tmp_path / f"{name}.wav", text=["a tone sound"]) for name in names]
    engine = load_engine("onnx", tiny_bundle, device="cpu")
    results = run_batch(engine, jobs, BatchOptions(tmp_path / "out")).set_index("id")
    assert results.index.tolist() == names  # every row ran, the ones after the bad rows too
    assert results.loc[[name for name, _, _ in short] + ["good"], "status"].tolist() == ["ok"] * (len(short) + 1)
    for name, samples, rate in short:  # separated at the input's rate and cropped back to its length
        info = sf.info(tmp_path / "out" / f"{name}.wav")
        assert (info.frames, info.samplerate) == (samples, rate)
        assert np.isfinite(sf.read(tmp_path / "out" / f"{name}.wav")[0]).all()
    for name in ("nan", "inf"):
        assert results.loc[name, "status"] == "failed"
        assert results.loc[name, "error"].startswith("non_finite:") and "0.500 s" in results.loc[name, "error"]
        assert not (tmp_path / "out" / f"{name}.wav").exists()

    class Broken:
        provider = "broken"

        device = torch.device("cpu")

        def masks(self, magnitude, query):
            raise RuntimeError("the mask network failed")

    broken = dataclasses.replace(engine, masker=Broken())
    results = run_batch(broken, jobs[-2:], BatchOptions(tmp_path / "out2")).set_index("id")
    assert results["status"].tolist() == ["failed", "failed"]
    assert results.loc["good", "error"] == "error: RuntimeError: the mask network failed"
    query = engine.encoder.text(["x"])
    with pytest.raises(Exception, match="non-finite"):
        engine.separate_array(np.full((1, 4000), np.inf, dtype=np.float32), query)
    for samples in (1, 300, 511):  # the Python API pads and crops as the batch does
        assert engine.separate_array(np.full((2, samples), 0.1, dtype=np.float32), query).shape == (2, samples)
