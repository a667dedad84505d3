"""A tiny SoundFont 2 file written from scratch, so fluidsynth code runs in tests without a bank
from a package: one looped sine sample (A4), one instrument, one preset per requested program."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def _chunk(tag: bytes, payload: bytes) -> bytes:
    pad = b"\0" if len(payload) % 2 else b""
    return tag + struct.pack("<I", len(payload)) + payload + pad


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _name(text: str) -> bytes:
    return text.encode("ascii")[:19].ljust(20, b"\0")


def write_tiny_sf2(path: Path, programs: list[int], sample_rate: int = 16000) -> Path:
    """Write ``path``: presets ``programs`` (bank 0) all playing one looped 440 Hz sine."""
    length = int(round(40 * sample_rate / 440))  # 40 cycles: the loop seam is nearly continuous
    wave = (0.5 * 32767 * np.sin(2 * np.pi * 440 * np.arange(length) / sample_rate)).astype("<i2")
    smpl = wave.tobytes() + b"\0" * 2 * 46  # 46 zero samples must follow each sample
    info = _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"isng", b"EMU8000\0"),
                 _chunk(b"INAM", b"marssep test\0\0"))
    sdta = _list(b"sdta", _chunk(b"smpl", smpl))
    presets = b"".join(struct.pack("<20sHHHIII", _name(f"p{p}"), p, 0, i, 0, 0, 0) for i, p in enumerate(programs))
    presets += struct.pack("<20sHHHIII", _name("EOP"), 0, 0, len(programs), 0, 0, 0)
    pbag = b"".join(struct.pack("<HH", i, 0) for i in range(len(programs) + 1))
    pgen = b"".join(struct.pack("<HH", 41, 0) for _ in programs) + struct.pack("<HH", 0, 0)  # 41: instrument 0
    inst = struct.pack("<20sH", _name("sine"), 0) + struct.pack("<20sH", _name("EOI"), 1)
    ibag = struct.pack("<HH", 0, 0) + struct.pack("<HH", 2, 0)
    igen = struct.pack("<HH", 54, 1) + struct.pack("<HH", 53, 0) + struct.pack("<HH", 0, 0)  # loop on; sample 0
    shdr = struct.pack("<20sIIIIIBbHH", _name("sine"), 0, length, 0, length, sample_rate, 69, 0, 0, 1)
    shdr += struct.pack("<20sIIIIIBbHH", _name("EOS"), 0, 0, 0, 0, 0, 0, 0, 0, 0)
    zero_mod = b"\0" * 10
    pdta = _list(b"pdta", _chunk(b"phdr", presets), _chunk(b"pbag", pbag), _chunk(b"pmod", zero_mod),
                 _chunk(b"pgen", pgen), _chunk(b"inst", inst), _chunk(b"ibag", ibag), _chunk(b"imod", zero_mod),
                 _chunk(b"igen", igen), _chunk(b"shdr", shdr))
    body = b"sfbk" + info + sdta + pdta
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


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
