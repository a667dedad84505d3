"""The cross-source set: real recordings of our classes from a package that never reaches training.

The test pairs hold recordings the separator never heard, but from the same packages (and, for the
instruments, a soundfont of the same kind) as its training material. The cross-source set asks
the harder question a user's own recordings ask: GCompris (``gcompris-qt-data``, educational
software, GPL-3) ships real recordings of farm animals, a dog, rain, water, drums and twelve real
acoustic instruments inside Qt resource bundles. None of its files is in the corpus
(``sources.SOUND_PACKAGES`` may never name it: ``check_held_out``), so its everyday clips come from a
held-out package and its instruments from recordings of a held-out kind (real players, where
training has FluidR3 renders and the test pairs MuseScore renders).

    marssep data cross-source --out data/cross_source      # data/cross_source.dvc

Layout: ``audio/<corpus>/<class>/<clip_id>.<ext>`` (the packaged bytes) and ``clips.csv``
(``COLUMNS``: licence per file from the package's copyright file, origin, md5). Pairs are drawn from
it by the test-pair recipe (``cross_source_pairs``), with audio queries from the corpus's own
test recordings of the class, and scored by the separator stages next to the test pairs.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from marssep_core.audio.io import load_audio, to_mono
from marssep_core.audio.resample import resample
from marssep_core.config import TestPairsConfig
from marssep_core.data import debian, sources
from marssep_core.data.audio_bank import INDEX_COLUMNS, AudioBank
from marssep_core.data.layout import origin_of
from marssep_core.data.qt_resources import read_qt_resources
from marssep_core.data.test_pairs import make_test_pairs
from marssep_core.io_utils import md5_file, replace_dir

PACKAGE = "gcompris-qt-data"
SPLIT = "cross_source"  # the split name its clips carry when pairs are drawn
TABLE = "clips.csv"
COLUMNS = ["clip_id", "path", "class", "corpus", "origin", "source_package", "package_version", "original_path", "licence", "md5"]
_BUNDLES = "usr/share/gcompris-qt/rcc/"
_RESOURCE = r"usr/share/gcompris-qt/rcc/(?P<bundle>[\w-]+)\.rcc/gcompris/src/(core|activities/(?P=bundle))/resource/"

RULES: tuple[sources.SoundRule, ...] = (
    *(sources.SoundRule(PACKAGE, _RESOURCE + rf"animals/{name}\.ogg", name)
      for name in ("cat", "cow", "dog", "duck", "horse", "owl", "pig", "sheep")),
    sources.SoundRule(PACKAGE, _RESOURCE + r"animals/chickens\.ogg", "chicken"),
    sources.SoundRule(PACKAGE, _RESOURCE + r"LRBark_\d_LA_cut\.ogg", "dog"),
    sources.SoundRule(PACKAGE, _RESOURCE + r"LRRain_in_garden_01_LA_cut\.ogg", "rain"),
    sources.SoundRule(PACKAGE, _RESOURCE + r"(sounds/water|water_fill)\.wav", "water"),
    sources.SoundRule(PACKAGE, _RESOURCE + r"(drum_kit|snare_drum|bongo)\.ogg", "drums"),
    *(sources.SoundRule(PACKAGE, _RESOURCE + rf"{name}\.ogg", name)
      for name in ("accordion", "banjo", "cello", "clarinet", "piano", "saxophone", "trumpet", "tuba", "violin")),
    sources.SoundRule(PACKAGE, _RESOURCE + r"flute_traversiere\.ogg", "flute"),
    sources.SoundRule(PACKAGE, _RESOURCE + r"guitar(_son\d)?\.ogg", "acoustic_guitar"),
    sources.SoundRule(PACKAGE, _RESOURCE + r"xylofon_son\d\.wav", "xylophone"),
)


class CrossSourceLeakError(ValueError):
    """The held-out package named among the corpus's training sources."""


def check_held_out(sound_packages: tuple[str, ...] = sources.SOUND_PACKAGES) -> None:
    """Raise when the cross-source package is one the corpus takes recordings from."""
    if PACKAGE in sound_packages:
        raise CrossSourceLeakError(f"{PACKAGE} holds the cross-source set and may not be a corpus source "
                                   "(marssep_core/data/sources.py SOUND_RULES)")


def build_cross_source(out_dir: Path, cache_dir: Path) -> pd.DataFrame:
    """Extract every file a rule matches, once per content (md5), into ``out_dir`` (replaced
    atomically); returns the table written to ``clips.csv``."""
    check_held_out()
    package = debian.fetch_package(PACKAGE, cache_dir)
    rules = [(rule, re.compile(rule.pattern)) for rule in RULES]
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".cross-source-") as tmp:
        staging, extract = Path(tmp) / "out", Path(tmp) / "extract"
        wanted = debian.copyright_path(PACKAGE)
        members = debian.extract_members(package.path, lambda p: p == wanted or (p.startswith(_BUNDLES) and p.endswith(".rcc")),
                                         extract)
        if wanted not in members:
            raise debian.PackageError(f"{package.path}: no {wanted}")
        licences = debian.CopyrightIndex(members[wanted].read_text(errors="replace"))
        rows: dict[str, dict[str, str]] = {}
        for bundle_path, local in sorted(members.items()):
            if bundle_path == wanted:
                continue
            for inner, payload in sorted(read_qt_resources(local).items()):
                path = f"{bundle_path}/{inner}"
                rule = next((r for r, regex in rules if regex.fullmatch(path)), None)
                digest = hashlib.md5(payload).hexdigest()
                if rule is None or digest in rows:  # the same bytes in several bundles: keep the first
                    continue
                corpus = sources.CLASSES[rule.label].corpus
                clip_id = f"{rule.label}-{digest[:10]}"
                rel = Path("audio") / corpus / rule.label / f"{clip_id}{Path(inner).suffix.lower()}"
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                (staging / rel).write_bytes(payload)
                rows[digest] = {"clip_id": clip_id, "path": rel.as_posix(), "class": rule.label, "corpus": corpus,
                                "origin": origin_of(PACKAGE, path), "source_package": PACKAGE,
                                "package_version": package.version, "original_path": path,
                                "licence": licences.licence(path), "md5": digest}
        if not rows:
            raise debian.PackageError(f"{package.path}: no file matched the cross-source rules")
        table = pd.DataFrame(sorted(rows.values(), key=lambda r: r["clip_id"]), columns=COLUMNS)
        table.to_csv(staging / TABLE, index=False)
        replace_dir(staging, out_dir)
    return table


def load_cross_source(directory: Path, sample_rate: int) -> AudioBank:
    """The set's clips decoded to mono at ``sample_rate``, as an in-memory ``AudioBank`` whose
    clips have split ``SPLIT``. A file that is missing or not the one ``clips.csv`` lists is an
    error naming it."""
    directory = Path(directory)
    table_path = directory / TABLE
    if not table_path.is_file():
        raise FileNotFoundError(f"{table_path}: no cross-source table; build it with "
                                "`marssep data cross-source --out data/cross_source`")
    table = pd.read_csv(table_path, keep_default_na=False).sort_values("clip_id").reset_index(drop=True)
    waves = []
    for row in table.itertuples(index=False):
        path = directory / row.path
        if not path.is_file() or md5_file(path) != row.md5:
            raise ValueError(f"{path}: missing or not the file {table_path} lists (md5 {row.md5})")
        audio, rate = load_audio(path)
        waves.append(resample(to_mono(audio), rate, sample_rate).astype(np.float32))
    lengths = np.array([len(w) for w in waves], dtype=np.int64)
    index = table.assign(split=SPLIT, offset=np.cumsum(lengths) - lengths, length=lengths)[INDEX_COLUMNS]
    return AudioBank(np.concatenate(waves), index, sample_rate)


def cross_source_pairs(cross: AudioBank, corpus_clips: pd.DataFrame, classes: pd.DataFrame, images: pd.DataFrame,
                       cfg: TestPairsConfig) -> pd.DataFrame:
    """Pairs drawn from the set by the test-pair recipe (``cfg``: the test pairs' protocol). Audio
    queries are recordings of the class from the corpus's test split (then val, train): its
    ``corpus_clips`` (audio bank index rows), so they are in the query bank."""
    rate = cross.sample_rate
    clips = pd.concat([cross.index, corpus_clips[INDEX_COLUMNS]], ignore_index=True)
    clips = clips.assign(duration=clips["length"] / rate)
    return make_test_pairs(clips, classes, images, cfg, audio=cross.clip_audio, split=SPLIT)


def open_cross_source(directory: Path, raw_dir: Path, corpus_clips: pd.DataFrame, sample_rate: int,
                      cfg: TestPairsConfig) -> tuple[AudioBank, pd.DataFrame]:
    """The set (``load_cross_source``) and its pairs (``cross_source_pairs``), with the class texts
    and pictures of the corpus at ``raw_dir``: what every stage that scores the set needs."""
    cross = load_cross_source(directory, sample_rate)
    classes = pd.read_csv(Path(raw_dir) / "classes.csv", keep_default_na=False)
    images = pd.read_csv(Path(raw_dir) / "images.csv", keep_default_na=False)
    return cross, cross_source_pairs(cross=cross, corpus_clips=corpus_clips, classes=classes, images=images, cfg=cfg)
