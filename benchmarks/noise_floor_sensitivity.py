"""Does the separator need digital silence? A recording's noise floor added to every clip.

The training instruments are soundfont renders whose notes decay into digital silence, while real
recordings (the cross-source players) carry a floor of room and microphone noise. If the model
leaned on that silence, a noise floor under each source of the test pairs would cost it much; if
not, a noise augmentation at training would not close the real players' gap. Each clip of the
bank gets pink noise (a 1/f power spectrum, the usual room and preamp floor) at ``--levels`` dB
under the clip's RMS over its samples above -80 dBFS; the target and the interferer each keep their
own noise (it is part of the source to separate), so the oracle IRM moves only with the overlap.

    python benchmarks/noise_floor_sensitivity.py   # -> benchmarks/results/noise_floor_sensitivity.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from marssep_core.data.audio_bank import AudioBank, load_audio_bank
from marssep_core.separation.evaluate import corpus_means, evaluate_pairs
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import load_separator

ROOT = Path(__file__).resolve().parents[1]


def pink_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """``(length,)`` float32 noise of unit standard deviation whose power falls as 1/f."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequency = np.arange(len(spectrum), dtype=np.float64)
    frequency[0] = 1.0
    noise = np.fft.irfft(spectrum / np.sqrt(frequency), length)
    return (noise / (noise.std() + 1e-12)).astype(np.float32)


def with_noise_floor(bank: AudioBank, level_db: float, seed: int) -> AudioBank:
    """A copy of ``bank`` whose every clip carries pink noise ``level_db`` under its active RMS."""
    rng = np.random.default_rng(seed)
    waves = bank.waves.astype(np.float32)
    for offset, length in zip(bank.index["offset"].astype(int), bank.index["length"].astype(int)):
        clip = waves[offset : offset + length]
        active = clip[np.abs(clip) > 1e-4]
        rms = float(np.sqrt(np.mean(active ** 2))) if active.size else 0.0
        clip += pink_noise(length, rng) * rms * 10 ** (level_db / 20)
    return dataclasses.replace(bank, waves=waves)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models/separator_sup.pt")
    parser.add_argument("--levels", type=float, nargs="+", default=[-40.0, -30.0], help="noise floor, dB under each clip's RMS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/noise_floor_sensitivity.json")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    separator, _ = load_separator(args.model)
    bank, queries = load_audio_bank(ROOT / "data/audio_bank"), QueryBank.load(ROOT / "data/query_bank.pt")
    pairs = pd.read_csv(ROOT / "data/clean/test_pairs.csv", keep_default_na=False)
    result: dict[str, object] = {"model": str(args.model), "pairs": len(pairs), "levels": {}}
    for level in [None, *args.levels]:
        noisy = bank if level is None else with_noise_floor(bank, level, args.seed)
        _, table = evaluate_pairs(separator=separator, pairs=pairs, bank=noisy, queries=queries, kinds=("text",), oracle=True)
        result["levels"]["clean" if level is None else f"{level:g} dB"] = by_corpus = corpus_means(table)
        print(level, by_corpus, flush=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
