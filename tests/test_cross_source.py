"""The cross-source set: Qt resource bundles (.rcc), the builder on a generated package, the leak guard
and the pairs it gives."""

from __future__ import annotations

import io
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from marssep_core.config import TestPairsConfig
from marssep_core.data import cross_source, sources
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.data.cross_source import (
    CrossSourceLeakError,
    build_cross_source,
    check_held_out,
    cross_source_pairs,
    load_cross_source,
)
from marssep_core.data.debian import copyright_path
from marssep_core.data.qt_resources import QtResourceError, read_qt_resources


def write_rcc(path: Path, files: dict[str, bytes], version: int = 2, compress: tuple[str, ...] = (), flags_extra: int = 0) -> Path:
    """A Qt resource bundle as Qt's ``rcc`` lays it out (tree breadth-first, children contiguous)."""
    tree: dict = {}
    for name, payload in files.items():
        node = tree
        *dirs, leaf = name.split("/")
        for part in dirs:
            node = node.setdefault(part, {})
        node[leaf] = (name, payload)
    names, data = bytearray(), bytearray()
    nodes: list[bytes] = []
    node_size = 14 if version == 1 else 22

    def name_offset(name: str) -> int:
        offset = len(names)
        names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        return offset

    queue = [("", tree, 0)]
    nodes.append(b"")
    while queue:
        name, node, index = queue.pop(0)
        offset = name_offset(name) if index else 0
        if isinstance(node, dict):
            first = len(nodes)
            nodes.extend(b"" for _ in node)
            queue.extend((child, node[child], first + i) for i, child in enumerate(sorted(node)))
            entry = struct.pack(">IHII", offset, 2, len(node), first)
        else:
            full, payload = node
            blob = struct.pack(">I", len(payload)) + zlib.compress(payload) if full in compress else payload
            entry = struct.pack(">IHHHI", offset, (1 if full in compress else 0) | flags_extra, 0, 0, len(data))
            data.extend(struct.pack(">I", len(blob)) + blob)
        nodes[index] = entry + b"\0" * (node_size - len(entry))
    header_size = 20 if version < 3 else 24
    tree_bytes = b"".join(nodes)
    tree_at, data_at = header_size, header_size + len(tree_bytes)
    names_at = data_at + len(data)
    header = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at) + (b"\0" * 4 if version >= 3 else b"")
    path.write_bytes(header + tree_bytes + bytes(data) + bytes(names))
    return path


FILES = {"app/src/activities/farm/resource/animals/owl.ogg": b"OggS owl" * 50,
         "app/src/activities/farm/resource/animals/pig.ogg": b"OggS pig" * 70,
         "app/src/activities/farm/resource/farm.svg": b"<svg/>"}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_every_file_reads_back_compressed_or_not(tmp_path, version):
    bundle = write_rcc(tmp_path / "farm.rcc", FILES, version, compress=("app/src/activities/farm/resource/animals/pig.ogg",))
    assert read_qt_resources(bundle) == FILES


def test_bad_bundles_are_refused_naming_the_file(tmp_path):
    not_rcc = tmp_path / "x.rcc"
    not_rcc.write_bytes(b"RIFF....WAVE")
    with pytest.raises(QtResourceError, match=r"x\.rcc: not a Qt resource bundle"):
        read_qt_resources(not_rcc)
    truncated = tmp_path / "cut.rcc"
    truncated.write_bytes(write_rcc(tmp_path / "whole.rcc", FILES).read_bytes()[:60])
    with pytest.raises(QtResourceError, match=r"cut\.rcc: "):
        read_qt_resources(truncated)
    with pytest.raises(QtResourceError, match="zstd"):
        read_qt_resources(write_rcc(tmp_path / "z.rcc", FILES, flags_extra=4))


def _gcompris_deb(tmp_path: Path, bundle: Path) -> Path:
    """A generated ``gcompris-qt-data`` package: one bundle under the real install path, a copyright file."""
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(f"Package: {cross_source.PACKAGE}\nVersion: 3.1-2\nArchitecture: all\n"
                                             "Maintainer: t <t@t>\nDescription: test\n")
    target = root / "usr/share/gcompris-qt/rcc/farm.rcc"
    target.parent.mkdir(parents=True)
    target.write_bytes(bundle.read_bytes())
    licence = root / copyright_path(cross_source.PACKAGE)
    licence.parent.mkdir(parents=True)
    licence.write_text("Files: *\nLicense: GPL-3+\n\nFiles: src/activities/farm/resource/animals/*\nLicense: GPL-3\n")
    deb = tmp_path / "cache" / f"{cross_source.PACKAGE}_3.1-2_all.deb"
    deb.parent.mkdir()
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True)
    return deb


def test_builder_takes_the_rule_files_with_licence_and_origin_and_is_deterministic(tmp_path):
    owl = io.BytesIO()
    sf.write(owl, np.sin(np.arange(8000) / 5.0).astype(np.float32) * 0.3, 8000, format="WAV")
    files = {"gcompris/src/activities/farm/resource/animals/owl.ogg": owl.getvalue(),
             "gcompris/src/activities/farm/resource/animals/unicorn.ogg": b"not a class",
             "gcompris/src/activities/farm/resource/violin.ogg": owl.getvalue()}  # same bytes: kept once
    deb = _gcompris_deb(tmp_path, write_rcc(tmp_path / "farm.rcc", files, compress=tuple(files)[:1]))
    table = build_cross_source(tmp_path / "cross", deb.parent)
    assert table["class"].tolist() == ["owl"] and table["corpus"].tolist() == ["everyday"]
    row = table.iloc[0]
    assert row["licence"] == "GPL-3" and row["package_version"] == "3.1-2"
    assert row["origin"] == f"{cross_source.PACKAGE}:usr/share/gcompris-qt/rcc/farm.rcc/gcompris/src/activities/farm/resource/animals/owl"
    assert (tmp_path / "cross" / row["path"]).read_bytes() == owl.getvalue()
    first = (tmp_path / "cross" / cross_source.TABLE).read_bytes()
    build_cross_source(tmp_path / "cross", deb.parent)
    assert (tmp_path / "cross" / cross_source.TABLE).read_bytes() == first
    bank = load_cross_source(tmp_path / "cross", 16000)
    assert bank.index["split"].tolist() == [cross_source.SPLIT] and bank.index["length"].tolist() == [16000]
    (tmp_path / "cross" / row["path"]).write_bytes(b"changed")
    with pytest.raises(ValueError, match=r"owl-\w+\.ogg: missing or not the file"):
        load_cross_source(tmp_path / "cross", 16000)


def test_the_held_out_package_never_feeds_the_corpus():
    check_held_out()  # the real corpus sources
    assert cross_source.PACKAGE not in {rule.package for rule in sources.SOUND_RULES}
    with pytest.raises(CrossSourceLeakError, match="gcompris-qt-data"):
        check_held_out((*sources.SOUND_PACKAGES, cross_source.PACKAGE))
    assert {rule.label for rule in cross_source.RULES} <= set(sources.CLASSES)


def test_cross_pairs_draw_targets_from_the_set_and_audio_queries_from_the_corpus(separator_assets):
    a = separator_assets
    cross = load_cross_source(a.cross_source, 16000)
    bank = load_audio_bank(a.bank)
    classes = pd.read_csv(a.raw / "classes.csv", keep_default_na=False)
    images = pd.read_csv(a.raw / "images.csv", keep_default_na=False)
    pairs = cross_source_pairs(cross=cross, corpus_clips=bank.index, classes=classes, images=images,
                               cfg=TestPairsConfig(pairs_per_corpus=9, crop_seconds=0.5))
    assert len(pairs) == 18 and set(pairs["target_clip"]) | set(pairs["interferer_clip"]) <= set(cross.index["clip_id"])
    assert (pairs["target_class"] != pairs["interferer_class"]).all()
    corpus_test = bank.index[bank.index["split"] == "test"]
    assert set(pairs["query_audio_clip"]) <= set(corpus_test["clip_id"])
    assert (pairs["query_audio_clip"].map(dict(zip(bank.index["clip_id"], bank.index["class"]))) == pairs["target_class"]).all()
