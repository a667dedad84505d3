"""Metric correctness: SI-SDR by hand, BSS Eval against mir_eval, semantic scores, aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from marssep_core.audio.signal import si_sdr_np
from marssep_core.audio.stft import STFT
from marssep_core.config import AudioConfig
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.evaluation.aggregate import distribution, paired_difference, summarize
from marssep_core.evaluation.bss import BssEvalError, bss_eval_target
from marssep_core.evaluation.metrics import METRICS, get_metrics, semantic_scores
from marssep_core.separation.data import pair_signals
from marssep_core.separation.evaluate import oracle_irm

SR = 16000


def _orthogonal_noise(reference: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    reference = reference - reference.mean()
    noise = rng.standard_normal(reference.shape)
    noise -= noise.mean()
    return noise - (noise @ reference) / (reference @ reference) * reference


def test_si_sdr_of_a_scaled_copy_is_clamped_high_and_known_noise_gives_known_db():
    rng = np.random.default_rng(0)
    reference = np.sin(2 * np.pi * 440 * np.arange(SR) / SR)
    assert si_sdr_np(0.3 * reference, reference) > 80.0  # +inf, clamped by the epsilon
    noise = _orthogonal_noise(reference, rng)
    for snr in (-5.0, 0.0, 10.0, 20.0):
        scaled = noise * np.sqrt((reference @ reference) / (noise @ noise) / 10 ** (snr / 10))
        assert si_sdr_np(reference + scaled, reference) == pytest.approx(snr, abs=1e-6)
        assert si_sdr_np(-4.0 * (reference + scaled), reference) == pytest.approx(snr, abs=1e-6)  # scale invariant


def _signals(rng: np.random.Generator, n: int = 8000) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n) / SR
    target = np.sin(2 * np.pi * 330 * t) * np.hanning(n) + 0.05 * rng.standard_normal(n)
    interferer = np.convolve(rng.standard_normal(n), np.ones(5) / 5, mode="same")
    return target, interferer


@pytest.mark.filterwarnings("ignore::FutureWarning")  # mir_eval 0.8 announces the module's removal in 0.9
def test_bss_eval_target_matches_mir_eval_bss_eval_sources():
    from mir_eval.separation import bss_eval_sources

    rng = np.random.default_rng(1)
    for leak in (0.0, 0.2, 0.7):
        target, interferer = _signals(rng)
        mixture = target + interferer
        estimate = target + leak * interferer + 0.01 * rng.standard_normal(target.shape)
        sdr, sir, sar, perm = bss_eval_sources(np.stack([target, interferer]), np.stack([estimate, mixture - estimate]),
                                               compute_permutation=False)
        ours = bss_eval_target(estimate, target, interferer)
        np.testing.assert_allclose(ours, (sdr[0], sir[0], sar[0]), rtol=1e-9)
        assert list(perm) == [0, 1]


def test_bss_eval_refuses_unusable_signals_with_a_clear_error():
    target, interferer = _signals(np.random.default_rng(2))
    with pytest.raises(BssEvalError, match="target is silent"):
        bss_eval_target(target, np.zeros_like(target), interferer)
    with pytest.raises(BssEvalError, match="estimate has non-finite"):
        bss_eval_target(np.full_like(target, np.nan), target, interferer)
    with pytest.raises(BssEvalError, match="estimate has shape"):
        bss_eval_target(target[:-10], target, interferer)


def test_a_perfect_estimate_scores_far_above_the_mixture():
    target, interferer = _signals(np.random.default_rng(3))
    metrics = get_metrics(target + interferer, target, interferer, target.copy())
    assert metrics["sdr"] > metrics["input_sdr"] + 40
    assert metrics["sir"] > metrics["input_sir"] + 40
    assert metrics["si_sdri"] > 40
    assert metrics["si_sdri"] == pytest.approx(metrics["si_sdr"] - metrics["input_si_sdr"])


def test_the_oracle_irm_beats_the_mixture_on_every_pair(separator_assets):
    bank = load_audio_bank(separator_assets.bank)
    pairs = separator_assets.pairs
    mixture, target, interferer = pair_signals(pairs, bank)
    oracle = oracle_irm(STFT.from_config(AudioConfig()), mixture, target, interferer)
    seen = set()
    for row, pair in enumerate(pairs.itertuples()):
        mix_sdr = bss_eval_target(mixture[row], target[row], interferer[row])[0]
        oracle_sdr = bss_eval_target(oracle[row], target[row], interferer[row])[0]
        assert oracle_sdr > mix_sdr + 3.0, pair.pair_id
        assert si_sdr_np(oracle[row], target[row]) > si_sdr_np(mixture[row], target[row]) + 3.0, pair.pair_id
        seen.add((pair.target_class, pair.interferer_class))
    assert len(seen) >= 6  # several target/interferer class combinations, all beaten


class BandJudge:
    """A judge whose embedding is the normalised (low, high) band energy split at 1 kHz."""

    name = "band"
    classes = ["low", "high"]
    texts = ["a low sound", "a high sound"]

    def embed_audio(self, waves: np.ndarray, sample_rate: int) -> torch.Tensor:
        spectrum = np.abs(np.fft.rfft(np.atleast_2d(waves), axis=-1)) ** 2
        split = int(1000 * waves.shape[-1] / sample_rate)
        bands = np.stack([spectrum[:, :split].sum(-1), spectrum[:, split:].sum(-1)], axis=1)
        return F.normalize(torch.from_numpy(bands).float(), dim=-1)

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        return self.class_embeddings()[[self.texts.index(t) for t in texts]]

    def class_embeddings(self) -> torch.Tensor:
        return torch.eye(2)


def test_semantic_scores_reward_the_queried_class_and_count_leakage():
    t = np.arange(SR) / SR
    low, high = np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 3000 * t)
    scores = semantic_scores(
        judge=BandJudge(),
        estimates=np.stack([low, high]),
        references=np.stack([low, low]),
        texts=["a low sound"] * 2,
        interferer_classes=["high", "high"],
        sample_rate=SR,
    )
    np.testing.assert_allclose(scores["clap_t"], [100.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(scores["clap_a"], [100.0, 0.0], atol=1e-3)
    np.testing.assert_array_equal(scores["leakage"], [0.0, 1.0])
    assert list(scores["judged_class"]) == ["low", "high"]
    one = get_metrics(
        mixture=low + high,
        target=low,
        interferer=high,
        estimate=low,
        judge=BandJudge(),
        query_text="a low sound",
        interferer_class="high",
        sample_rate=SR,
    )
    assert one["clap_t"] > one["input_clap_t"] and one["leakage"] == 0.0 and one["judged_class"] == "low"


def _table() -> pd.DataFrame:
    rows = []
    for system, offset in (("mixture", 0.0), ("supervised", 2.0)):
        for pair, corpus in enumerate(["a", "a", "b"]):
            rows.append({"pair_id": f"p{pair}", "corpus": corpus, "system": system, "modality": "text", "error": "",
                         **{m: offset + pair for m in METRICS}, "leakage": float(pair == 0)})
    rows.append({**rows[-1], "pair_id": "p9", "sdr": np.nan, "error": "bss_eval: estimate is silent (all zeros)"})
    return pd.DataFrame(rows)


def test_summarize_writes_flat_keys_with_standard_errors_and_skips_failed_units():
    summary = summarize(_table())
    assert summary["a.supervised.text.sdr"] == 2.5 and summary["a.supervised.text.sdr_sem"] == 0.5
    assert summary["all.supervised.text.n"] == 3  # the failed unit is left out
    assert summary["all.mixture.text.leakage"] == pytest.approx(1 / 3, abs=1e-4)
    assert {f"b.mixture.text.{m}{s}" for m in METRICS for s in ("", "_sem")} <= set(summary)
    curves = distribution(_table(), "si_sdri")
    assert list(curves.columns) == ["quantile", "mixture_text", "supervised_text"]
    assert curves["supervised_text"].iloc[-1] == 4.0
    assert paired_difference(_table(), "supervised", "mixture", "sdr") == {"text": {"mean": 2.0, "sem": 0.0, "n": 3}}
