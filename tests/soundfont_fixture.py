"""A tiny SoundFont 2 file written from scratch, so fluidsynth code runs in tests without a bank
from a package: one looped sine sample (A4), one instrument, one preset per requested program."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from marssep_core.data.sf2 import Preset, Sample, Zone, write_sf2


def write_tiny_sf2(path: Path, programs: list[int], sample_rate: int = 16000) -> Path:
    """Write ``path``: presets ``programs`` (bank 0) all playing one looped 440 Hz sine."""
    length = int(round(40 * sample_rate / 440))  # 40 cycles: the loop seam is nearly continuous
    wave = (0.5 * 32767 * np.sin(2 * np.pi * 440 * np.arange(length) / sample_rate)).astype(np.int16)
    sine = Sample(name="sine", pcm=wave, sample_rate=sample_rate, root_key=69, loop=(0, length))
    presets = [Preset(name=f"p{p}", program=p, zones=(Zone(sample=0, low=0, high=127),), release_seconds=0.001) for p in programs]
    return write_sf2(path, "marssep test", [sine], presets)


def write_soundfont_folder(directory: Path, keys: list[str], programs: list[int]) -> Path:
    """A ``data/soundfonts`` folder: a tiny bank under each of ``keys``, with its table."""
    import pandas as pd

    from marssep_core.data.soundfonts import COLUMNS, TABLE
    from marssep_core.io_utils import md5_file

    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for key in keys:
        file = write_tiny_sf2(directory / f"{key}.sf2", programs)
        rows.append({"key": key, "file": file.name, "family": "generated", "package": "none", "version": "1",
                     "original_path": "tests/soundfont_fixture.py", "licence": "CC0", "md5": md5_file(file)})
    pd.DataFrame(rows, columns=COLUMNS).to_csv(directory / TABLE, index=False)
    return directory
