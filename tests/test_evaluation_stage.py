"""The judge, the evaluation runner and the ``evaluate`` stage on the tiny corpus."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import sys
import time
import types

import numpy as np
import pandas as pd
import pytest
import torch

from marssep_core.config import AudioConfig, TestPairsConfig, build
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.encoders.vocabulary import QUERY_KINDS
from marssep_core.evaluation import runner as evaluation_runner
from marssep_core.evaluation import stage as evaluation_stage
from marssep_core.evaluation.clap import CLAP_SAMPLE_RATE, LaionClapJudge
from marssep_core.evaluation.judge import JudgeNet, JudgeNetConfig, load_judge
from marssep_core.evaluation.judge_train import (
    JudgeConfig,
    clip_accuracy,
    run_judge_stage,
)
from marssep_core.evaluation.metrics import METRICS
from marssep_core.evaluation.runner import EvaluateConfig, EvaluationError, duplicate_models, same_separator
from marssep_core.evaluation.stage import EvaluatePaths, run_evaluate_stage
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import load_separator, save_separator
from marssep_core.separation.stages import UNetParams, build_separator
from tests.conftest import TINY_JUDGE_PARAMS, TINY_SEPARATOR_PARAMS


@pytest.fixture(scope="module")
def judged(separator_assets, tmp_path_factory):
    """A tiny trained judge and a tiny (untrained) separator model file."""
    out = tmp_path_factory.mktemp("judged")
    report = run_judge_stage(cfg=build(JudgeConfig, TINY_JUDGE_PARAMS), raw_dir=separator_assets.raw, bank_dir=separator_assets.bank,
                             out_model=out / "judge.pt", out_metrics=out / "judge.json", run_dir=out / "run")
    torch.manual_seed(0)
    queries = QueryBank.load(separator_assets.queries)
    separator = build_separator(UNetParams(**TINY_SEPARATOR_PARAMS["model"]), AudioConfig(), queries.dim)
    save_separator(out / "sep.pt", separator, queries.encoder, {"stage": "test"})
    return out, report


def test_the_judge_learns_the_tiny_classes_and_round_trips(separator_assets, judged):
    out, report = judged
    assert report["classes"] == 6 and report["chance"] == pytest.approx(1 / 6, abs=1e-4)
    assert report["test"]["all"] > 0.5  # six generated classes with distinct spectra
    judge, meta = load_judge(out / "judge.pt")
    assert meta["seed"] == 7 and json.loads((out / "judge.json").read_text())["test"] == meta["test_accuracy"]
    bank = load_audio_bank(separator_assets.bank)
    assert clip_accuracy(judge, bank, "test") == report["test"]
    waves = np.random.default_rng(0).standard_normal((3, 300)).astype(np.float32)  # shorter than one FFT
    embedded = judge.embed_audio(waves, 16000)
    assert embedded.shape == (3, 16) and torch.allclose(embedded.norm(dim=-1), torch.ones(3))
    with pytest.raises(KeyError, match="unknown"):
        judge.embed_text(["not a class text"])


def test_judge_net_rejects_a_single_class():
    with pytest.raises(ValueError, match="two classes"):
        JudgeNet(JudgeNetConfig(n_classes=1))


def _stage(separator_assets, judged, tmp_path, cfg: EvaluateConfig, pairs: pd.DataFrame | None = None,
           cross_source: bool = False, models: dict | None = None):
    out, _ = judged
    tmp_path.mkdir(parents=True, exist_ok=True)
    pairs_path = tmp_path / "pairs.csv"
    (separator_assets.pairs if pairs is None else pairs).to_csv(pairs_path, index=False)
    paths = EvaluatePaths(pairs=pairs_path, bank=separator_assets.bank, queries=separator_assets.queries, judge=out / "judge.pt",
                          judge_metrics=out / "judge.json", out=tmp_path / "metrics", report=tmp_path / "reports",
                          raw=separator_assets.raw, cross_source=separator_assets.cross_source if cross_source else None)
    return run_evaluate_stage(cfg=cfg, audio=AudioConfig(), paths=paths, models=models or {"supervised": out / "sep.pt"},
                              pairs_cfg=TestPairsConfig(pairs_per_corpus=6, crop_seconds=0.5))


@pytest.fixture(scope="module")
def evaluated(separator_assets, judged, tmp_path_factory):
    """One run of the stage on the tiny corpus: (output folder, metrics)."""
    out = tmp_path_factory.mktemp("evaluated")
    return out, _stage(separator_assets, judged, out, EvaluateConfig(workers=1, figures_per_corpus=1), cross_source=True)


def test_evaluate_stage_writes_every_key_table_plot_and_report(separator_assets, evaluated):
    tmp_path, metrics = evaluated
    corpora = sorted(separator_assets.pairs["corpus"].unique())
    for corpus in [*corpora, "all"]:
        for system in ("mixture", "supervised", "oracle_irm"):
            for modality in QUERY_KINDS:
                for metric in METRICS:
                    assert f"{corpus}.{system}.{modality}.{metric}" in metrics
                    assert f"{corpus}.{system}.{modality}.{metric}_sem" in metrics
    pairs = len(separator_assets.pairs)
    assert metrics["errors.units"] == pairs * 3 * 4 and metrics["errors.failed"] == 0
    assert metrics["all.oracle_irm.text.sdr"] > metrics["all.mixture.text.sdr"] + 5
    assert metrics["all.mixture.text.si_sdri"] == 0.0
    table = pd.read_csv(tmp_path / "metrics" / "eval_pairs.csv", keep_default_na=False)
    assert len(table) == pairs * 3 * 4
    assert json.loads((tmp_path / "metrics" / "eval.json").read_text()) == metrics
    curves = pd.read_csv(tmp_path / "metrics" / "eval_cdf_si_sdri.csv")
    assert {"quantile", "supervised_text", "oracle_irm_omni"} <= set(curves.columns)
    report = (tmp_path / "reports" / "eval.md").read_text()
    assert "Table 1" in report and "Table 2" in report and "| Text | supervised |" in report
    # the cross-source set: every model and the oracle per corpus, SI-SDRi only
    for corpus in [*corpora, "all"]:
        assert {f"cross_source.{corpus}.{s}.text.si_sdri" for s in ("supervised", "oracle_irm")} <= set(metrics)
    assert metrics["cross_source.all.oracle_irm.text.si_sdri"] > metrics["cross_source.all.supervised.text.si_sdri"]
    assert "## Cross-source set" in report and "| Audio | supervised |" in report.split("## Cross-source set")[1]
    figures = sorted((tmp_path / "reports" / "figures").glob("*.png"))
    assert len(figures) == len(corpora) and all(f"figures/{f.name}" in report for f in figures)
    page = (tmp_path / "reports" / "eval.html").read_text()
    # 2 corpora x 4 modalities x 4 picks; each: mixture, target, supervised, oracle (+ reference audio)
    assert page.count("<section class='example'") == len(corpora) * 4 * 4
    assert page.count("<audio ") >= len(corpora) * 4 * 4 * 4 and page.count("class='spectrogram'") == len(corpora) * 4 * 4
    for link in re.findall(r"(?:src|href)='([^']+)'", page):
        assert (tmp_path / "reports" / link).is_file(), link


def test_the_listening_page_plays_every_clip_and_shows_every_picture_in_chromium(evaluated):
    """The page in Debian's headless Chromium (scripts/test.sh installs it), served over HTTP:
    every audio element loads and reports a duration, every image renders, no link is broken. The
    screenshot is kept in test-artifacts/listening_page.png."""
    import functools
    import http.server
    import threading
    import urllib.request
    from pathlib import Path

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    tmp_path, _ = evaluated
    reports = tmp_path / "reports"
    assert Path("/usr/bin/chromium").is_file() and Path("/usr/bin/chromedriver").is_file(), \
        "Debian's chromium and chromium-driver are needed: bash scripts/test.sh installs them"
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(reports))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1200,2400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(base + "eval.html")
        state = "return Array.from(document.querySelectorAll('audio')).map(a => [a.currentSrc, a.readyState, a.duration, a.error ? a.error.code : 0])"
        deadline = time.monotonic() + 60
        while True:
            players = driver.execute_script(state)
            if all(ready >= 1 or error for _, ready, _, error in players) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        images = driver.execute_script("return Array.from(document.images).map(i => [i.currentSrc, i.complete, i.naturalWidth])")
        links = driver.execute_script("return Array.from(document.querySelectorAll('[src],[href]')).map(e => e.src || e.href)")
        broken = []
        for link in links:
            try:
                urllib.request.urlopen(link, timeout=10).close()
            except OSError as err:
                broken.append((link, repr(err)))
        artifacts = Path(__file__).resolve().parents[1] / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        driver.save_screenshot(str(artifacts / "listening_page.png"))
    finally:
        driver.quit()
        server.shutdown()
    assert len(players) >= 16 and len(images) >= 8
    for src, ready, duration, error in players:
        assert error == 0 and ready >= 1 and duration > 0.1, (src, ready, duration, error)  # crops here are 0.5 s
    for src, complete, width in images:
        assert complete and width > 0, src
    assert links and not broken, broken


def test_same_separator_needs_equal_weights_and_temperature(separator_assets):
    queries = QueryBank.load(separator_assets.queries)
    torch.manual_seed(0)
    first = build_separator(UNetParams(**TINY_SEPARATOR_PARAMS["model"]), AudioConfig(), queries.dim)
    torch.manual_seed(0)
    again = build_separator(UNetParams(**TINY_SEPARATOR_PARAMS["model"]), AudioConfig(), queries.dim)
    other = build_separator(UNetParams(**TINY_SEPARATOR_PARAMS["model"]), AudioConfig(), queries.dim)
    assert same_separator(first, again) and not same_separator(first, other)
    again.mask_net.cfg = dataclasses.replace(again.mask_net.cfg, temperature=1.3)
    assert not same_separator(first, again)
    assert duplicate_models({"supervised": first, "other": other, "rl": copy.deepcopy(first)}) == {"rl": "supervised"}


def test_a_model_with_the_supervised_weights_is_copied_and_scores_as_if_recomputed(separator_assets, judged, tmp_path,
                                                                                   monkeypatch):
    """The RL model file when RL kept the start: same weights, its own file and meta."""
    out, _ = judged
    separator, _ = load_separator(out / "sep.pt")
    save_separator(tmp_path / "rl.pt", separator, QueryBank.load(separator_assets.queries).encoder, {"stage": "rl", "step": 0})
    models = {"supervised": out / "sep.pt", "rl": tmp_path / "rl.pt"}
    cfg = EvaluateConfig(workers=1, figures_per_corpus=0)
    copied = _stage(separator_assets, judged, tmp_path / "copied", cfg, cross_source=True, models=models)
    monkeypatch.setattr(evaluation_runner, "duplicate_models", lambda separators: {})
    monkeypatch.setattr(evaluation_stage, "duplicate_models", lambda separators: {})
    recomputed = _stage(separator_assets, judged, tmp_path / "recomputed", cfg, cross_source=True, models=models)
    assert copied == recomputed and copied["all.rl.text.si_sdri"] == copied["all.supervised.text.si_sdri"]
    assert any(key.startswith("cross_source.all.rl.") for key in copied)
    for name in ("eval_pairs.csv", "eval_errors.csv", "eval_cdf_si_sdri.csv", "eval.json"):
        assert (tmp_path / "copied/metrics" / name).read_bytes() == (tmp_path / "recomputed/metrics" / name).read_bytes(), name


def test_forked_bss_workers_give_the_same_table(separator_assets, judged, tmp_path):
    _stage(separator_assets, judged, tmp_path / "one", EvaluateConfig(workers=1, figures_per_corpus=0))
    _stage(separator_assets, judged, tmp_path / "two", EvaluateConfig(workers=2, figures_per_corpus=0))
    one, two = (pd.read_csv(tmp_path / d / "metrics" / "eval_pairs.csv") for d in ("one", "two"))
    pd.testing.assert_frame_equal(one, two)


def test_a_bad_pair_is_recorded_and_only_fails_the_stage_past_the_budget(separator_assets, judged, tmp_path):
    pairs = separator_assets.pairs.copy()
    pairs.loc[0, "target_clip"] = "no-such-clip"
    pairs.loc[1, "query_audio_clip"] = "missing-query-clip"
    metrics = _stage(
        separator_assets=separator_assets,
        judged=judged,
        tmp_path=tmp_path / "ok",
        cfg=EvaluateConfig(workers=1, figures_per_corpus=0, max_error_rate=0.5),
        pairs=pairs,
    )
    assert metrics["errors.failed"] == 2 * 3 * 4  # both pairs, every system and modality
    errors = pd.read_csv(tmp_path / "ok" / "metrics" / "eval_errors.csv")
    assert set(errors["pair_id"]) == set(pairs["pair_id"].iloc[:2]) and errors["error"].str.contains("no-such-clip").any()
    assert metrics["all.supervised.text.n"] == len(pairs) - 2
    with pytest.raises(EvaluationError, match="over the budget"):
        _stage(
            separator_assets=separator_assets,
            judged=judged,
            tmp_path=tmp_path / "strict",
            cfg=EvaluateConfig(workers=1, figures_per_corpus=0, max_error_rate=0.0),
            pairs=pairs,
        )
    assert (tmp_path / "strict" / "metrics" / "eval_errors.csv").is_file()  # written before failing


def test_laion_clap_judge_resamples_to_48k_and_normalises(tmp_path, monkeypatch):
    calls = {}

    class FakeClap:
        def __init__(self, enable_fusion, amodel):
            calls["init"] = (enable_fusion, amodel)

        def load_ckpt(self, path):
            calls["ckpt"] = path

        def get_audio_embedding_from_data(self, x, use_tensor):
            calls["audio_shape"] = tuple(x.shape)
            return torch.stack([x.abs().mean(-1) + 1.0, x.abs().max(-1).values], dim=1) * 3.0

        def get_text_embedding(self, texts, use_tensor):
            return torch.tensor([[float(len(t)), 1.0] for t in texts])

    monkeypatch.setitem(sys.modules, "laion_clap", types.SimpleNamespace(CLAP_Module=FakeClap))
    checkpoint = tmp_path / "clap.pt"
    checkpoint.write_bytes(b"x")
    judge = LaionClapJudge(checkpoint, ["a", "b"], ["a dog", "a cat barking"])
    embedded = judge.embed_audio(np.ones((2, 16000), np.float32) * 0.5, 16000)
    assert calls["init"] == (False, "HTSAT-base") and calls["ckpt"] == str(checkpoint)
    assert calls["audio_shape"] == (2, CLAP_SAMPLE_RATE)
    assert torch.allclose(embedded.norm(dim=-1), torch.ones(2)) and judge.class_embeddings().shape == (2, 2)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        LaionClapJudge(tmp_path / "missing.pt", ["a"], ["a dog"])


def test_evaluate_config_rejects_unknown_modalities(separator_assets, judged, tmp_path):
    with pytest.raises(ValueError, match="modalities must be among"):
        _stage(separator_assets, judged, tmp_path, dataclasses.replace(EvaluateConfig(workers=1), modalities=("smell",)))


def test_marssep_report_rebuilds_the_page_and_prints_a_short_summary(separator_assets, judged, evaluated, tmp_path, capsys):
    from marssep_core.cli import main

    out, _ = evaluated
    judge_dir, _ = judged
    assert main(["report", "--summary", "--metrics", str(out / "metrics" / "eval.json"), "--out", str(tmp_path)]) == 0
    summary = capsys.readouterr().out
    assert "supervised" in summary and "oracle_irm" in summary and len(summary.splitlines()) <= 16
    assert max(len(line) for line in summary.splitlines()) < 120  # readable, unlike `dvc metrics show`
    params = tmp_path / "params.yaml"
    params.write_text("audio: {sample_rate: 16000}\n")
    assert main(["report", "--metrics", str(out / "metrics" / "eval.json"), "--table", str(out / "metrics" / "eval_pairs.csv"),
                 "--pairs", str(out / "pairs.csv"), "--bank", str(separator_assets.bank), "--queries", str(separator_assets.queries),
                 "--raw", str(separator_assets.raw), "--model", f"supervised={judge_dir / 'sep.pt'}", "--out", str(tmp_path / "rebuilt"),
                 "--params", str(params)]) == 0
    assert (tmp_path / "rebuilt" / "eval.html").read_text() == (out / "reports" / "eval.html").read_text()
    assert main(["report", "--metrics", str(tmp_path / "none.json")]) == 2
