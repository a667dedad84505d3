"""Separator training on the tiny profile: query bank, mixtures, the stage, resume after SIGKILL, DDP."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from marssep_core.config import AudioConfig, TestPairsConfig, build
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.encoders.fusion import combine
from marssep_core.separation.data import (
    REVERB_DRR_DB,
    MixingConfig,
    MixtureSampler,
    pair_queries,
    pair_signals,
    synthetic_reverb,
)
from marssep_core.separation.queries import QueryBank, mixup_queries, negative_query, unseen_recording_noise
from marssep_core.separation.separator import load_separator
from marssep_core.separation.stages import SupervisedConfig, UNetParams, calibrate_temperature, run_supervised_stage
from marssep_core.training.loop import LoopConfig
from tests.conftest import TINY_SEPARATOR_PARAMS, supervised_paths

ROOT = Path(__file__).resolve().parents[1]


def test_query_bank_round_trips_and_covers_every_clip(separator_assets):
    queries = QueryBank.load(separator_assets.queries)
    bank = load_audio_bank(separator_assets.bank)
    assert queries.clip_ids == bank.index["clip_id"].tolist()
    assert queries.audio.shape == (len(bank.index), queries.dim)
    assert len(queries.image_paths) == len(queries.classes) == 6  # one picture per tiny class
    torch.testing.assert_close(queries.audio.norm(dim=-1), torch.ones(len(bank.index)))
    assert queries.encoder["path"].endswith("encoder.pt") and len(queries.encoder["md5"]) == 32


def test_mixup_is_one_hot_or_convex(separator_assets):
    queries = QueryBank.load(separator_assets.queries)
    label, clip = queries.classes[0], queries.clip_ids[0]
    single = mixup_queries(queries, [label] * 16, [clip] * 16, np.random.default_rng(0), single_prob=1.0)
    candidates = torch.cat([queries.text_of([label]), queries.audio_of([clip]), queries.image[queries.picture_rows(label)]])
    assert ((single @ candidates.T).max(dim=1).values > 0.9999).all()
    mixed = mixup_queries(queries, [label] * 4, [clip] * 4, np.random.default_rng(0), single_prob=0.0)
    torch.testing.assert_close(mixed.norm(dim=-1), torch.ones(4))
    away = negative_query(queries.text_of([label]), queries.text_of([queries.classes[1]]))
    assert float(away @ queries.text_of([queries.classes[1]]).T) < float(queries.text_of([label]) @ queries.text_of([queries.classes[1]]).T)
    torch.testing.assert_close(combine({"text": 3 * queries.text_of([label])}), queries.text_of([label]))


def _bank_with_audio_cosines(cosines: dict[str, float], dim: int = 256, per_split: int = 400) -> tuple[QueryBank, pd.DataFrame]:
    """One class ``a`` whose clips of split ``s`` embed at cosine ``cosines[s]`` to its text."""
    rng = np.random.default_rng(12345)  # not the seed the test's noise is drawn with
    text = torch.nn.functional.one_hot(torch.tensor([0]), dim).float()
    ids, rows, index = [], [], []
    for split, cosine in cosines.items():
        for i in range(per_split):
            away = torch.from_numpy(rng.standard_normal(dim).astype(np.float32))
            away[0] = 0.0
            rows.append(cosine * text[0] + (1 - cosine**2) ** 0.5 * away / away.norm())
            ids.append(f"{split}-{i}")
            index.append({"clip_id": ids[-1], "class": "a", "corpus": "everyday", "split": split})
    bank = QueryBank(clip_ids=ids, audio=torch.stack(rows), classes=["a"], texts=["a"], text=text, image_paths=[],
                     image_classes=[], image=torch.zeros(0, dim), encoder={})
    return bank, pd.DataFrame(index)


def test_audio_query_noise_takes_training_embeddings_as_far_as_unseen_ones():
    bank, clips = _bank_with_audio_cosines({"train": 0.7, "val": 0.35})
    noise = unseen_recording_noise(bank, clips)
    assert noise == pytest.approx({"everyday": 3.0**0.5}, rel=1e-4)  # (0.7 / 0.35)^2 - 1 = 3
    train = clips[clips["split"] == "train"]["clip_id"].tolist()
    noisy = mixup_queries(bank, ["a"] * len(train), train, np.random.default_rng(0), single_prob=1.0,
                          audio_noise=[noise["everyday"]] * len(train))
    audio_rows = (noisy @ bank.text.T).squeeze(1) < 0.99  # the one-hot draws that picked audio, not text
    assert 100 < int(audio_rows.sum()) < 300
    assert float((noisy @ bank.text.T).squeeze(1)[audio_rows].mean()) == pytest.approx(0.35, abs=0.03)
    off, default = np.random.default_rng(0), np.random.default_rng(0)  # zero noise draws nothing: runs stay as before
    torch.testing.assert_close(mixup_queries(bank, ["a"] * 8, train[:8], off, single_prob=0.5, audio_noise=[0.0] * 8),
                               mixup_queries(bank, ["a"] * 8, train[:8], default, single_prob=0.5))
    assert off.random() == default.random()
    equal, _ = _bank_with_audio_cosines({"train": 0.5, "val": 0.6})
    assert unseen_recording_noise(equal, clips.assign(clip_id=equal.clip_ids)) == {"everyday": 0.0}


def test_sampler_mixes_within_a_corpus_and_is_reproducible(separator_assets):
    bank, queries = load_audio_bank(separator_assets.bank), QueryBank.load(separator_assets.queries)
    sampler = MixtureSampler(bank, queries, "train", MixingConfig(crop_seconds=0.5))
    first = sampler.sample(8, np.random.default_rng(3))
    again = sampler.sample(8, np.random.default_rng(3))
    assert first.mixture.shape == (8, 8000) and first.query.shape == (8, queries.dim)
    torch.testing.assert_close(first.mixture, first.target + first.interferer)
    torch.testing.assert_close(first.mixture, again.mixture)
    corpus = dict(zip(bank.index["class"], bank.index["corpus"]))
    assert all(corpus[t] == corpus[i] and t != i for t, i in zip(first.target_class, first.interferer_class))


def test_pair_signals_and_queries_follow_the_fixed_pairs(separator_assets):
    bank, queries = load_audio_bank(separator_assets.bank), QueryBank.load(separator_assets.queries)
    pairs = separator_assets.pairs
    mixture, target, interferer = pair_signals(pairs, bank)
    assert mixture.shape == (len(pairs), 8000)
    np.testing.assert_array_equal(mixture, target + interferer)
    embedded = pair_queries(pairs, queries)
    assert embedded["has_image"].all() and embedded["omni"].shape == (len(pairs), queries.dim)


def _tiny_cfg(**loop) -> SupervisedConfig:
    params = json.loads(json.dumps(TINY_SEPARATOR_PARAMS))
    params["loop"].update(loop)
    return build(SupervisedConfig, params)


def test_supervised_stage_writes_model_metrics_and_history(separator_assets, tmp_path):
    a = separator_assets
    paths = dataclasses.replace(supervised_paths(a, tmp_path, metrics="sup.json", history="hist.csv"), cross_source=a.cross_source)
    report = run_supervised_stage(cfg=_tiny_cfg(), audio=AudioConfig(), paths=paths,
                                  pairs_cfg=TestPairsConfig(pairs_per_corpus=6, crop_seconds=0.5))
    assert json.loads((tmp_path / "sup.json").read_text()) == report
    assert set(report["test"]) == {"text", "audio", "image", "omni", "oracle_irm"}
    assert set(report["test_by_corpus"]) == {"inst", "sounds"}
    assert set(report["test_by_corpus"]["inst"]) == set(report["test"])
    assert report["test"]["oracle_irm"]["si_sdri"] > 5  # the ceiling on generated tones and noise
    cross = report["cross_source"]  # pairs of held-out recordings, with audio queries from the corpus
    assert set(cross["test"]) == set(report["test"]) and set(cross["by_corpus"]) == {"inst", "sounds"}
    assert cross["test"]["text"]["n"] == 12 and cross["test"]["oracle_irm"]["si_sdri"] > 5
    assert report["best_step"] in (3, 6) and set(report["val"]) == {"si_sdri_text", "si_sdri_audio"}
    history = pd.read_csv(tmp_path / "hist.csv")
    assert history["step"].tolist() == [1, 2, 3, 4, 5, 6] and history["loss"].notna().all()
    assert not (tmp_path / "run" / "last.pt").exists()  # a finished run leaves no resume state
    separator, info = load_separator(tmp_path / "sep.pt")
    assert info["meta"]["step"] == report["best_step"] and info["encoder"]["md5"]
    assert separator.sample_rate == 16000
    # the kept temperature is the best mean of the text and audio validation SI-SDRi, and the model file carries it
    calibration = report["calibration"]
    assert calibration["selection"] == "text_audio"
    scores = {float(t): (v + calibration["val_si_sdri_audio"][t]) / 2 for t, v in calibration["val_si_sdri_text"].items()}
    assert set(scores) == set(SupervisedConfig().mask_temperatures)
    assert scores[calibration["temperature"]] == max(scores.values())
    assert separator.mask_net.cfg.temperature == calibration["temperature"]


def test_mask_temperatures_must_be_positive():
    with pytest.raises(ValueError, match="mask_temperatures"):
        SupervisedConfig(mask_temperatures=(1.0, 0.0))
    with pytest.raises(ValueError, match="temperature_selection must be one of"):
        SupervisedConfig(temperature_selection="audio")


def test_temperature_selection_weighs_the_audio_queries_when_asked():
    @dataclasses.dataclass(frozen=True)
    class Cfg:
        temperature: float = 1.0

    class Task:  # text peaks at T = 1.1, audio peaks at 1.5: their mean at 1.42
        def evaluate(self, mask_net):
            t = mask_net.cfg.temperature
            return {"si_sdri_text": 5.0 - (t - 1.1) ** 2, "si_sdri_audio": 2.0 - 4 * (t - 1.5) ** 2}

    net = types.SimpleNamespace(cfg=Cfg())
    temperatures = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5)
    by_text = calibrate_temperature(mask_net=net, task=Task(), temperatures=temperatures, selection="text")
    assert by_text["temperature"] == net.cfg.temperature == 1.1
    both = calibrate_temperature(mask_net=net, task=Task(), temperatures=temperatures, selection="text_audio")
    assert both["temperature"] == net.cfg.temperature == 1.4 and both["selection"] == "text_audio"
    assert both["val_si_sdri_audio"]["1.5"] == 2.0 and both["val_si_sdri_text"] == by_text["val_si_sdri_text"]


def test_member_batches_must_be_known_and_split_the_batch():
    with pytest.raises(ValueError, match="member_batches must be one of"):
        SupervisedConfig(member_batches="halves")
    three = UNetParams(members=3)
    with pytest.raises(ValueError, match="does not split among model.members=3"):
        SupervisedConfig(model=three, member_batches="split", loop=LoopConfig(batch_size=32))
    assert SupervisedConfig(model=three, member_batches="split", loop=LoopConfig(batch_size=33)).member_batches == "split"


def _train_command(a, out: Path, params: Path) -> list[str]:
    return [sys.executable, str(ROOT / "pipeline" / "train_supervised.py"), "--raw", str(a.raw), "--bank", str(a.bank),
            "--queries", str(a.queries), "--pairs", str(out / "pairs.csv"), "--out", str(out / "sep.pt"),
            "--metrics", str(out / "sup.json"), "--history", str(out / "hist.csv"), "--run-dir", str(out / "run"),
            "--cross-source", str(a.cross_source), "--params", str(params), "--threads", "1"]


def _write_params(path: Path, **loop) -> Path:
    params = json.loads(json.dumps(TINY_SEPARATOR_PARAMS))
    params["loop"].update(loop)
    path.write_text(yaml.safe_dump({"audio": {"sample_rate": 16000}, "train_supervised": params}))
    return path


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_resumes_and_matches_an_uninterrupted_run(separator_assets, tmp_path):
    a = separator_assets
    params = _write_params(tmp_path / "params.yaml", steps=60, checkpoint_every=5, eval_every=20)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    for out in (killed, clean):
        out.mkdir()
        a.pairs.to_csv(out / "pairs.csv", index=False)
    proc = subprocess.Popen(_train_command(a, killed, params), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    checkpoint = killed / "run" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if checkpoint.exists():
            step = torch.load(checkpoint, weights_only=True)["step"]
            if step >= 10:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed; make the run longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = torch.load(checkpoint, weights_only=True)  # whatever the moment, the file is whole
    assert 10 <= state["step"] < 60 and len(state["history"]) == state["step"]
    assert not (killed / "sep.pt").exists()

    resumed = subprocess.run(_train_command(a, killed, params), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from {checkpoint} at step {state['step']}" in resumed.stderr
    uninterrupted = subprocess.run(_train_command(a, clean, params), capture_output=True, text=True, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    pd.testing.assert_frame_equal(pd.read_csv(killed / "hist.csv"), pd.read_csv(clean / "hist.csv"))
    first, _ = load_separator(killed / "sep.pt")
    second, _ = load_separator(clean / "sep.pt")
    for key, value in first.state_dict().items():
        torch.testing.assert_close(value, second.state_dict()[key], rtol=0, atol=0)
    assert not list((killed / "run").glob("*"))


@pytest.mark.slow
def test_ddp_two_cpu_processes_with_gloo_end_with_identical_weights(separator_assets, tmp_path):
    a = separator_assets
    a.pairs.to_csv(tmp_path / "pairs.csv", index=False)
    params = _write_params(tmp_path / "params.yaml", steps=4, batch_size=4, eval_every=4, checkpoint_every=4)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               *_train_command(a, tmp_path, params)[1:]]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "sup.json").read_text())
    assert report["processes"] == 2 and report["replicas_identical"] is True


def test_augmentation_changes_sources_but_keeps_the_mixture_identity(separator_assets):
    bank, queries = load_audio_bank(separator_assets.bank), QueryBank.load(separator_assets.queries)
    plain = MixtureSampler(bank, queries, "train", MixingConfig(crop_seconds=0.5, speed_range=0.0, tilt_range=0.0))
    augmented = MixtureSampler(bank, queries, "train", MixingConfig(crop_seconds=0.5, speed_range=0.2, tilt_range=0.5))
    a, b = plain.sample(6, np.random.default_rng(1)), augmented.sample(6, np.random.default_rng(1))
    assert b.mixture.shape == a.mixture.shape
    torch.testing.assert_close(b.mixture, b.target + b.interferer)
    assert not torch.allclose(a.target, b.target)


def test_synthetic_reverb_keeps_the_direct_path_and_draws_a_decaying_tail():
    rate, impulse = 16000, np.zeros(16000, dtype=np.float32)
    impulse[0] = 1.0
    response = synthetic_reverb(impulse, rate, rt60_max=0.8, rng=np.random.default_rng(3))
    assert response.shape == impulse.shape and response.dtype == np.float32
    assert response[0] == pytest.approx(1.0)
    drr_db = -10 * np.log10(np.sum(response[1:].astype(np.float64) ** 2))
    assert REVERB_DRR_DB[0] - 0.01 <= drr_db <= REVERB_DRR_DB[1] + 0.01
    early, late = np.sum(response[1:801] ** 2), np.sum(response[1601:2401] ** 2)
    assert late < early / 2  # the tail decays
    np.testing.assert_array_equal(response, synthetic_reverb(impulse, rate, rt60_max=0.8, rng=np.random.default_rng(3)))


def test_reverberant_sources_keep_the_mixture_identity(separator_assets):
    bank, queries = load_audio_bank(separator_assets.bank), QueryBank.load(separator_assets.queries)
    wet = MixtureSampler(bank, queries, "train", MixingConfig(crop_seconds=0.5, reverb_prob=1.0)).sample(4, np.random.default_rng(2))
    assert wet.mixture.shape == (4, 8000) and torch.isfinite(wet.mixture).all()
    torch.testing.assert_close(wet.mixture, wet.target + wet.interferer)


def test_a_resume_file_from_other_settings_is_not_resumed(separator_assets, tmp_path, caplog):
    a = separator_assets
    (tmp_path / "run").mkdir()
    torch.save({"fingerprint": "other", "step": 5}, tmp_path / "run" / "last.pt")
    (tmp_path / "run" / ".last.abc.tmp.pt").write_bytes(b"half a checkpoint")  # a write killed mid-way
    with caplog.at_level("WARNING"):
        report = run_supervised_stage(cfg=_tiny_cfg(steps=2, eval_every=2), audio=AudioConfig(),
                                      paths=supervised_paths(a, tmp_path, metrics="sup.json"))
    assert "belongs to other settings" in caplog.text
    assert report["steps"] == 2 and len(pd.read_csv(tmp_path / "h.csv")) == 2
    assert not list((tmp_path / "run").iterdir())
