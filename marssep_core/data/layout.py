"""The ``data/raw`` layout shared by the default corpus builder and the importer.

```
data/raw/
  metadata.csv   one row per audio clip (METADATA_COLUMNS)
  classes.csv    one row per class: corpus, text query, number of pictures
  images.csv     one row per picture (IMAGE_COLUMNS)
  audio/<corpus>/<class>/<clip_id>.<original extension>
  images/<class>/<image_id>.<ext>
```
Raw audio is kept exactly as found (bytes, sample rate, channels, length); the ``clean`` stage
decides what is usable.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from marssep_core.io_utils import write_table_atomic

METADATA_COLUMNS = [
    "clip_id",
    "path",  # relative to data/raw
    "class",
    "corpus",
    "origin",  # recording-origin group: clips sharing it never straddle splits
    "split_hint",  # "", "trainval" or "test": a source that must land on one side
    "source_package",
    "package_version",
    "original_path",
    "licence",
    "md5",
    "also_found_in",  # other places the identical bytes were found, ';'-separated
    "frames_path",  # video frames directory of an imported clip, else ""
]
IMAGE_COLUMNS = ["image_id", "class", "path", "kind", "source_package", "original_path", "licence", "md5"]
CLASS_COLUMNS = ["class", "corpus", "text", "n_images"]


def safe_name(text: str) -> str:
    """A file-system-safe identifier: lower case, ``[a-z0-9_-]`` only."""
    name = re.sub(r"[^a-z0-9_-]+", "_", text.lower()).strip("_")
    if not name:
        raise ValueError(f"{text!r} has no usable characters for a name")
    return name


def origin_of(package: str, original_path: str) -> str:
    """Recording-origin group of a found clip: its directory plus the stem without a take number.

    ``Dog1.wav`` and ``Dog2.wav`` in one folder are takes of one session and share an origin,
    so the split never puts one in train and the other in test.
    """
    path = Path(original_path)
    stem = re.sub(r"[_\-]?\d+$", "", path.stem) or path.stem
    return f"{package}:{path.parent.as_posix()}/{stem}"


def write_layout(raw_dir: Path, clips: pd.DataFrame, images: pd.DataFrame, classes: pd.DataFrame) -> None:
    """Write the three tables of ``raw_dir`` with their canonical column order and row order."""
    clips = clips.reindex(columns=METADATA_COLUMNS).astype(object).fillna("").sort_values("clip_id", kind="stable")
    images = images.reindex(columns=IMAGE_COLUMNS).astype(object).fillna("").sort_values("image_id", kind="stable")
    classes = classes.reindex(columns=CLASS_COLUMNS).sort_values("class", kind="stable")
    write_table_atomic(raw_dir / "metadata.csv", clips)
    write_table_atomic(raw_dir / "images.csv", images)
    write_table_atomic(raw_dir / "classes.csv", classes)


def read_metadata(raw_dir: Path) -> pd.DataFrame:
    """Read ``metadata.csv`` with every column as text (empty cells as ``""``)."""
    path = raw_dir / "metadata.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; build it with 'marssep data build-default' or 'marssep data import'")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("clip_id", "path", "class", "corpus", "origin") if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing required column(s) {missing}")
    return frame.reindex(columns=METADATA_COLUMNS).fillna("")
