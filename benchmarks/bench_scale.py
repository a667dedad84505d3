"""How the data stages grow with the corpus: time and peak memory per stage at growing sizes.

Generated corpora (short clips of 20 synthetic classes, two takes per origin) go through the DVC
stage scripts ``ingest``, ``clean`` and ``prepare_audio`` exactly as ``dvc repro`` runs them, each
as its own process tree (wall seconds and peak summed RSS, as in ``bench_data.py``). At the middle
size, ``prepare_audio`` also runs on clips ten times longer: the bank is written as it is decoded,
so its peak memory must not follow the hours of audio. Beside the stages, the near-duplicate search
alone on random fingerprints (the cost the issue measured: quadratic before LSH), and, when the
default corpus is built, planted copies of its clips found by the LSH search vs by comparing all
pairs, and how many paper-profile training batches one core mixes per second (to size
``data_workers`` for a GPU).

    python benchmarks/bench_scale.py                        # 500, 5,000, 50,000 clips (~20 min, 2 cores)
    python benchmarks/bench_scale.py --sizes 200 2000       # quicker
Results: ``benchmarks/results/scale.json``; the growth factor per 10x clips is stage time (or
memory) at 10x the clips over the time at 1x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_data import run_measured  # noqa: E402

from marssep_core.config import CleanConfig, IngestConfig  # noqa: E402
from marssep_core.data import cleaning  # noqa: E402
from marssep_core.data.catalog import measure_clip  # noqa: E402
from marssep_core.data.layout import write_layout  # noqa: E402

SAMPLE_RATE = 16000
CLASSES = 20


def generated_clip(label: int, seed: int, seconds: float) -> np.ndarray:
    """A class-coloured noise burst with its own onsets: each class a band, each clip its timing."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    centre = 150.0 * 1.2 ** label
    spectrum *= np.exp(-0.5 * (np.log(np.maximum(freqs, 1.0) / centre) / 0.25) ** 2)
    wave = np.fft.irfft(spectrum, n)
    envelope = np.zeros(n)
    for start in rng.integers(0, max(1, n - n // 4), size=3):
        envelope[start:] += np.exp(-np.arange(n - start) / (SAMPLE_RATE * rng.uniform(0.03, 0.2)))
    wave *= envelope
    return (0.5 * wave / (np.abs(wave).max() + 1e-9)).astype(np.float32)


def write_corpus(raw: Path, clips: int, seconds: float) -> None:
    """``clips`` generated clips in the ``data/raw`` layout (two corpora, 20 classes, 2 takes/origin)."""
    rows = []
    for index in range(clips):
        label = index % CLASSES
        corpus = "everyday" if label < CLASSES // 2 else "instruments"
        clip_id = f"c{label:02d}-{index:06d}"
        rel = Path("audio") / corpus / f"class{label:02d}" / f"{clip_id}.wav"
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(raw / rel, generated_clip(label, index, seconds), SAMPLE_RATE, subtype="PCM_16")
        rows.append({"clip_id": clip_id, "path": rel.as_posix(), "class": f"class{label:02d}", "corpus": corpus,
                     "origin": f"gen:{label}:{index // (2 * CLASSES)}", "split_hint": "", "source_package": "generated",
                     "original_path": f"generated_clip({label}, {index})", "licence": "CC0", "md5": ""})
    classes = pd.DataFrame([{"class": f"class{k:02d}", "corpus": "everyday" if k < CLASSES // 2 else "instruments",
                             "text": f"generated sound {k}", "n_images": 0} for k in range(CLASSES)])
    write_layout(raw, pd.DataFrame(rows), pd.DataFrame(columns=["image_id", "class", "path"]), classes)


def stage_runs(work: Path, clips: int, seconds: float, stages: tuple[str, ...]) -> dict[str, dict[str, float]]:
    raw, catalog, clean, bank = work / "raw", work / "catalog", work / "clean", work / "bank"
    started = time.perf_counter()
    write_corpus(raw, clips, seconds)
    out: dict[str, dict[str, float]] = {"generate": {"seconds": round(time.perf_counter() - started, 2)}}
    python = sys.executable
    commands = {
        "ingest": [python, "pipeline/ingest.py", "--raw", str(raw), "--out", str(catalog)],
        "clean": [python, "pipeline/clean.py", "--raw", str(raw), "--catalog", str(catalog / "catalog.parquet"),
                  "--out", str(clean), "--metrics", str(work / "data.json")],
        "prepare_audio": [python, "pipeline/prepare_audio.py", "--raw", str(raw), "--clips", str(clean / "clips.parquet"),
                          "--out", str(bank)],
    }
    for stage in stages:
        out[stage] = run_measured(commands[stage])
        print(f"{clips:>7} clips x {seconds} s  {stage:<14} {out[stage]}", flush=True)
    return out


def near_duplicate_growth(sizes: list[int]) -> list[dict[str, float]]:
    """The near-duplicate search alone on random 128-frame fingerprints (no duplicates)."""
    rng = np.random.default_rng(0)
    rows = []
    for size in sizes:
        catalog = pd.DataFrame({"clip_id": [f"c{i}" for i in range(size)], "row_order": np.arange(size),
                                "fingerprint": [rng.integers(0, 256, 512, dtype=np.uint8).tobytes().hex() for _ in range(size)],
                                "fingerprint_frames": 128})
        started = time.perf_counter()
        cleaning.near_duplicates(catalog, pd.Series(True, index=catalog.index), CleanConfig())
        rows.append({"clips": size, "seconds": round(time.perf_counter() - started, 3)})
        print(f"near_duplicates {rows[-1]}", flush=True)
    return rows


def planted_copies(raw: Path, count: int, work: Path) -> dict[str, float] | None:
    """Resampled (11.025 kHz), re-levelled (-9 dB) and Ogg re-encoded copies of ``count`` default-corpus
    clips: duplicates found by the LSH search vs by comparing every pair, and whether they agree."""
    metadata_path = raw / "metadata.csv"
    if not metadata_path.is_file():
        return None
    from marssep_core.audio.io import load_audio
    from marssep_core.audio.resample import resample

    metadata = pd.read_csv(metadata_path, dtype=str, keep_default_na=False).sample(count, random_state=1)
    ingest, rows = IngestConfig(), []
    for k, clip in enumerate(metadata.itertuples()):
        audio, rate = load_audio(raw / clip.path)
        copies = [(resample(audio, rate, 11025), 11025, "wav"), (audio * 10 ** (-9 / 20), rate, "wav"), (audio, rate, "ogg")]
        wave, copy_rate, suffix = copies[k % 3]
        sf.write(work / f"copy{k}.{suffix}", np.asarray(wave).T, copy_rate)
        for clip_id, folder, rel in ((clip.clip_id, raw, clip.path), (f"copy-{clip.clip_id}", work, f"copy{k}.{suffix}")):
            facts = measure_clip(folder, rel, ingest)
            rows.append({"clip_id": clip_id, "fingerprint": facts.fingerprint, "fingerprint_frames": facts.fingerprint_frames})
    catalog = pd.DataFrame(rows).assign(row_order=lambda t: np.arange(len(t)))
    everyone, cfg = pd.Series(True, index=catalog.index), CleanConfig()
    hashed = cleaning.near_duplicates(catalog, everyone, cfg)
    exhaustive = cleaning.near_duplicates(catalog, everyone, cfg, exhaustive=True)
    planted = catalog["clip_id"].str.startswith("copy-")
    return {"planted": int(planted.sum()), "found_comparing_all_pairs": int(((exhaustive != "") & planted).sum()),
            "found_lsh": int(((hashed != "") & planted).sum()), "identical": bool(hashed.equals(exhaustive)),
            "false_hits": int(((hashed != "") & ~planted).sum())}


def paper_batches_per_second(bank_dir: Path, queries_path: Path, workers: int, batches: int = 6) -> dict[str, float] | None:
    """Paper-profile training batches (128 x 65,535 samples, params' augmentation) mixed from the
    default corpus's audio bank: per second in the training process (one core), and with
    ``workers`` prefetching processes."""
    if not (bank_dir / "waves.npy").is_file() or not queries_path.is_file():
        return None
    import dataclasses

    import torch
    import yaml

    from marssep_core.config import build, load_params
    from marssep_core.data.audio_bank import load_audio_bank
    from marssep_core.separation.data import MixtureSampler
    from marssep_core.separation.queries import QueryBank
    from marssep_core.separation.stages import SupervisedConfig
    from marssep_core.training.prefetch import BatchPrefetcher

    params = load_params(ROOT / "params.yaml")["train_supervised"]
    paper = yaml.safe_load((ROOT / "profiles" / "paper.yaml").read_text())["train_supervised"]
    cfg = build(SupervisedConfig, {**params, "mixing": {**params["mixing"], **paper["mixing"]}})
    mixing = dataclasses.replace(cfg.mixing, render_prob=0.0)
    torch.set_num_threads(1)
    sampler = MixtureSampler(load_audio_bank(bank_dir), QueryBank.load(queries_path), "train", mixing)
    batch = paper["loop"]["batch_size"]
    sampler.sample(batch, np.random.default_rng(0))  # warm the memory map
    started = time.perf_counter()
    for step in range(batches):
        sampler.sample(batch, np.random.default_rng([0, step, 0]))
    one_core = batches / (time.perf_counter() - started)
    with BatchPrefetcher(
        draw=lambda rng, size: sampler.sample(size, rng), batch_size=batch, seed=0, rank=0, steps=range(4 * workers + 1), workers=workers
    ) as ahead:
        ahead.batch(0)  # workers started and busy
        started = time.perf_counter()
        for step in range(1, 4 * workers + 1):
            ahead.batch(step)
        pooled = 4 * workers / (time.perf_counter() - started)
    return {"batch": batch, "crop_samples": sampler.length, "batches_per_second_one_core": round(one_core, 3),
            f"batches_per_second_{workers}_workers": round(pooled, 3)}


def growth(rows: dict[int, dict], stage: str, key: str) -> dict[str, float]:
    sizes = sorted(rows)
    return {f"{a}->{b}": round(rows[b][stage][key] / max(rows[a][stage][key], 1e-9), 2)
            for a, b in zip(sizes, sizes[1:]) if b == 10 * a}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000, 50000])
    parser.add_argument("--seconds", type=float, default=0.5, help="clip length (long-clip bank run: 10x)")
    parser.add_argument("--near-duplicate-sizes", type=int, nargs="+", default=[2000, 8000, 32000])
    parser.add_argument("--planted", type=int, default=150, help="default-corpus clips copied (0: skip)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    args = parser.parse_args()
    stages = ("ingest", "clean", "prepare_audio")
    results: dict = {"command": "python benchmarks/bench_scale.py " + " ".join(sys.argv[1:]),
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "clip_seconds": args.seconds}
    per_size = {}
    with tempfile.TemporaryDirectory(prefix="marssep-scale-") as tmp:
        for size in args.sizes:
            per_size[size] = stage_runs(Path(tmp) / str(size), size, args.seconds, stages)
            shutil.rmtree(Path(tmp) / str(size))
        middle = args.sizes[len(args.sizes) // 2]
        long_clips = stage_runs(Path(tmp) / "long", middle, 10 * args.seconds, ("ingest", "clean", "prepare_audio"))
        planted = planted_copies(ROOT / "data" / "raw", args.planted, Path(tmp)) if args.planted else None
    results["stages"] = {str(size): rows for size, rows in per_size.items()}
    results["growth_per_10x_clips"] = {
        stage: {"time": growth(per_size, stage, "seconds"), "peak_rss": growth(per_size, stage, "peak_rss_mib")} for stage in stages
    }
    results["bank_with_10x_longer_clips"] = {"clips": middle, "clip_seconds": 10 * args.seconds,
                                             "prepare_audio": long_clips["prepare_audio"],
                                             "peak_rss_ratio_vs_short": round(long_clips["prepare_audio"]["peak_rss_mib"]
                                                                              / per_size[middle]["prepare_audio"]["peak_rss_mib"], 2)}
    results["near_duplicates_random_fingerprints"] = near_duplicate_growth(args.near_duplicate_sizes)
    results["near_duplicates_planted_copies"] = planted
    results["paper_profile_batches"] = paper_batches_per_second(ROOT / "data" / "audio_bank", ROOT / "data" / "query_bank.pt",
                                                                workers=max(1, (os.cpu_count() or 2) - 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: results[k] for k in ("growth_per_10x_clips", "bank_with_10x_longer_clips")}, indent=1))


if __name__ == "__main__":
    main()
