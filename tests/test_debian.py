"""Debian package reading: member extraction from a real .deb and DEP-5 licence lookup."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from marssep_core.data import debian

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
License: GPL-2

Files: Media/*
  Projects
License: CC-BY-SA-3.0

Files: share/hedgewars/Data/Sounds/*
License: GFDL-1.3

Files: share/hedgewars/Data/Sounds/Droplet*.ogg
License: CC-BY-SA-3.0

Files: etc/samples/ambi_choir.flac
Copyright: 2013 Someone
License: CC0
"""


@pytest.mark.parametrize(
    "path, licence",
    [
        ("usr/share/scratch/Media/Sounds/Animal/Dog1.wav", "CC-BY-SA-3.0"),
        ("usr/share/scratch/bin/scratch", "GPL-2"),
        ("usr/share/games/hedgewars/Data/Sounds/voices/Default/Laugh.ogg", "GFDL-1.3"),
        ("usr/share/games/hedgewars/Data/Sounds/Droplet2.ogg", "CC-BY-SA-3.0"),
        ("usr/share/sonic-pi/samples/ambi_choir.flac", "CC0"),
        ("usr/share/sonic-pi/samples/other.flac", "GPL-2"),
    ],
)
def test_copyright_index_most_specific_match(path, licence):
    assert debian.CopyrightIndex(DEP5).licence(path) == licence


def test_copyright_without_catch_all_is_unknown():
    assert debian.CopyrightIndex("Files: a/*\nLicense: MIT\n").licence("usr/b/c") == "unknown"


@pytest.fixture
def tiny_deb(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: marssep-test-data\nVersion: 1.2-3\nArchitecture: all\nMaintainer: t <t@t>\nDescription: test\n"
    )
    for rel, text in {"usr/share/x/sounds/a.ogg": "A", "usr/share/x/sounds/b.txt": "B", "usr/share/doc/marssep-test-data/copyright": DEP5}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    deb = tmp_path / "cache" / "marssep-test-data_1.2-3_all.deb"
    deb.parent.mkdir()
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True)
    return deb


def test_extract_only_wanted_members(tiny_deb, tmp_path):
    out = debian.extract_members(tiny_deb, lambda p: p.endswith(".ogg"), tmp_path / "out")
    assert set(out) == {"usr/share/x/sounds/a.ogg"}
    assert out["usr/share/x/sounds/a.ogg"].read_text() == "A"
    assert not (tmp_path / "out" / "usr/share/x/sounds/b.txt").exists()


def test_fetch_uses_the_cache_and_reads_the_version(tiny_deb):
    package = debian.fetch_package("marssep-test-data", tiny_deb.parent)
    assert package.version == "1.2-3" and package.path == tiny_deb


def test_broken_deb_is_reported(tmp_path):
    bad = tmp_path / "broken_1_all.deb"
    bad.write_bytes(b"not a deb")
    with pytest.raises(debian.PackageError, match="broken_1_all.deb"):
        debian.fetch_package("broken", tmp_path)


def test_rules_reach_inside_a_zip_archive_the_package_ships(tmp_path, monkeypatch):
    from marssep_core.data import corpus, sources
    from marssep_core.data.layout import origin_of

    bundle = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        for name, data in {"audio/cow_01.ogg": b"moo1", "audio/cow_02.ogg": b"moo2", "audio/notes.txt": b"x"}.items():
            archive.writestr(name, data)
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: marssep-zip-data\nVersion: 1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: test\n"
    )
    for rel, data in {"usr/share/g/data.zip": bundle.read_bytes(), "usr/share/doc/marssep-zip-data/copyright": DEP5.encode()}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    deb = tmp_path / "marssep-zip-data_1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True)
    monkeypatch.setattr(sources, "SOUND_RULES", (sources.SoundRule("marssep-zip-data", r"usr/share/g/data\.zip/audio/cow_\d+\.ogg", "cow"),))
    monkeypatch.setattr(sources, "ARCHIVES", {"marssep-zip-data": ("usr/share/g/data.zip",)})

    packages = {"marssep-zip-data": debian.DebPackage("marssep-zip-data", "1", deb)}
    files = corpus._extract_all(packages, tmp_path / "extract", tmp_path / "persistent")
    members = {path: local.read_bytes() for (_, path), local in files.items() if path.endswith(".ogg")}
    assert members == {"usr/share/g/data.zip/audio/cow_01.ogg": b"moo1", "usr/share/g/data.zip/audio/cow_02.ogg": b"moo2"}
    assert ("marssep-zip-data", "usr/share/g/data.zip") not in files
    assert not (tmp_path / "extract" / "marssep-zip-data" / "usr/share/g/data.zip").exists()  # the archive is not kept
    assert origin_of("marssep-zip-data", "usr/share/g/data.zip/audio/cow_02.ogg") == "marssep-zip-data:usr/share/g/data.zip/audio/cow"


def test_corrupt_zip_archive_is_named(tmp_path):
    bad = tmp_path / "data.zip"
    bad.write_bytes(b"PK not really")
    with pytest.raises(debian.PackageError, match="usr/share/g/data.zip"):
        debian.extract_zip_members(bad, "usr/share/g/data.zip", lambda p: True, tmp_path / "out")
