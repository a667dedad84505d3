"""Write SoundFont 2 banks: mono 16-bit samples mapped to key ranges, one instrument per preset.

Enough of the format (SoundFont 2.01, the RIFF ``sfbk`` layout) for fluidsynth to play sampled
instruments: per zone a key range, the sample's root key, an optional loop and a release time.
``sample_library.py`` turns per-note recordings into a bank with it; the tests' tiny bank too.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# generator operators (SoundFont 2.01, section 8.1.2)
GEN_RELEASE_VOL_ENV = 38
GEN_INSTRUMENT = 41
GEN_KEY_RANGE = 43
GEN_SAMPLE_ID = 53
GEN_SAMPLE_MODES = 54
GEN_OVERRIDING_ROOT_KEY = 58
PADDING_SAMPLES = 46  # zero samples the format requires after each sample


@dataclass(frozen=True)
class Sample:
    """One recording: ``pcm`` int16 ``(n,)`` at ``sample_rate``, sounding MIDI key ``root_key``;
    ``loop`` (start, end) in samples makes it sustain while the key is held."""

    name: str
    pcm: np.ndarray
    sample_rate: int
    root_key: int
    loop: tuple[int, int] | None = None


@dataclass(frozen=True)
class Zone:
    """Keys ``low..high`` (inclusive) play ``samples[sample]``."""

    sample: int
    low: int
    high: int


@dataclass(frozen=True)
class Preset:
    """General MIDI ``program`` (bank 0) playing ``zones``; notes fade out over ``release_seconds``."""

    name: str
    program: int
    zones: tuple[Zone, ...]
    release_seconds: float = 0.2


def _chunk(tag: bytes, payload: bytes) -> bytes:
    pad = b"\0" if len(payload) % 2 else b""
    return tag + struct.pack("<I", len(payload)) + payload + pad


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _name(text: str) -> bytes:
    return text.encode("ascii", "replace")[:19].ljust(20, b"\0")


def _zstr(text: str) -> bytes:
    """A zero-terminated INFO string padded to an even length (libinstpatch refuses odd ones)."""
    raw = text.encode("ascii", "replace")[:255] + b"\0"
    return raw + b"\0" * (len(raw) % 2)


def _timecents(seconds: float) -> int:
    return int(round(1200 * math.log2(max(seconds, 0.001))))


def write_sf2(path: Path, bank_name: str, samples: list[Sample], presets: list[Preset], copyright_notice: str = "") -> Path:
    """Write ``path``: ``samples`` in one sample chunk, each preset with its own instrument;
    ``copyright_notice`` goes to the bank's ICOP field (where an attribution licence wants it)."""
    smpl, headers, offset = [], [], 0
    for sample in samples:
        pcm = np.asarray(sample.pcm)
        if pcm.dtype != np.int16 or pcm.ndim != 1 or pcm.size < 2:
            raise ValueError(f"sample {sample.name!r}: want mono int16 with at least 2 samples, got {pcm.dtype} {pcm.shape}")
        loop = sample.loop or (0, pcm.size - 1)
        headers.append(struct.pack("<20sIIIIIBbHH", _name(sample.name), offset, offset + pcm.size, offset + loop[0],
                                   offset + loop[1], sample.sample_rate, sample.root_key, 0, 0, 1))
        smpl.append(pcm.astype("<i2").tobytes() + b"\0" * 2 * PADDING_SAMPLES)
        offset += pcm.size + PADDING_SAMPLES
    headers.append(struct.pack("<20sIIIIIBbHH", _name("EOS"), 0, 0, 0, 0, 0, 0, 0, 0, 0))

    ordered = sorted(presets, key=lambda p: p.program)
    phdr, pbag, pgen, inst, ibag, igen = [], [], [], [], [], []
    for index, preset in enumerate(ordered):
        phdr.append(struct.pack("<20sHHHIII", _name(preset.name), preset.program, 0, index, 0, 0, 0))
        pbag.append(struct.pack("<HH", index, 0))
        pgen.append(struct.pack("<HH", GEN_INSTRUMENT, index))
        inst.append(struct.pack("<20sH", _name(preset.name), len(ibag)))
        for zone in preset.zones:
            ibag.append(struct.pack("<HH", len(igen), 0))
            sample = samples[zone.sample]
            igen += [struct.pack("<HBB", GEN_KEY_RANGE, zone.low, zone.high),  # the format wants it first
                     struct.pack("<Hh", GEN_RELEASE_VOL_ENV, _timecents(preset.release_seconds)),
                     struct.pack("<HH", GEN_OVERRIDING_ROOT_KEY, sample.root_key),
                     struct.pack("<HH", GEN_SAMPLE_MODES, 1 if sample.loop else 0),
                     struct.pack("<HH", GEN_SAMPLE_ID, zone.sample)]  # and this last
    phdr.append(struct.pack("<20sHHHIII", _name("EOP"), 0, 0, len(ordered), 0, 0, 0))
    pbag.append(struct.pack("<HH", len(ordered), 0))
    pgen.append(struct.pack("<HH", 0, 0))
    inst.append(struct.pack("<20sH", _name("EOI"), len(ibag)))
    ibag.append(struct.pack("<HH", len(igen), 0))
    igen.append(struct.pack("<HH", 0, 0))
    no_modulators = b"\0" * 10

    info = _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"isng", b"EMU8000\0"),
                 _chunk(b"INAM", _zstr(bank_name)), *([_chunk(b"ICOP", _zstr(copyright_notice))] if copyright_notice else []))
    sdta = _list(b"sdta", _chunk(b"smpl", b"".join(smpl)))
    pdta = _list(b"pdta", _chunk(b"phdr", b"".join(phdr)), _chunk(b"pbag", b"".join(pbag)), _chunk(b"pmod", no_modulators),
                 _chunk(b"pgen", b"".join(pgen)), _chunk(b"inst", b"".join(inst)), _chunk(b"ibag", b"".join(ibag)),
                 _chunk(b"imod", no_modulators), _chunk(b"igen", b"".join(igen)), _chunk(b"shdr", b"".join(headers)))
    body = b"sfbk" + info + sdta + pdta
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return Path(path)


def key_zones(root_keys: list[int]) -> list[tuple[int, int]]:
    """Key ranges for samples at ``root_keys`` (sorted, distinct): each key plays the nearest
    sample (ties to the lower one); the lowest and highest samples extend to keys 0 and 127."""
    if sorted(set(root_keys)) != list(root_keys):
        raise ValueError(f"root keys must be sorted and distinct, got {root_keys}")
    bounds = [0] + [(a + b) // 2 + 1 for a, b in zip(root_keys, root_keys[1:])] + [128]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(len(root_keys))]
