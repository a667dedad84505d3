"""``marssep data import``: bring a VGGSound- or MUSIC-style corpus already on disk into ``data/raw``.

Supported CSV layouts:
- ``sop``: Sound-of-Pixels / CLIPSep MUSIC lists, no header: ``audio_path,frames_path,num_frames``;
  the class is the audio file's parent directory (``.../audio/violin/abc.mp3`` -> ``violin``).
- ``vggsound``: the official ``vggsound.csv``, no header: ``youtube_id,start_seconds,label,split``;
  audio is looked up under the audio root as ``<id>_<start:06d>.*`` or ``<id>_<start>.*``.
- ``table``: any CSV with a header naming the audio (``path``/``audio_path``/``audio``/``file``),
  the class (``label``/``class``) and optionally ``frames_path``, ``origin``, ``split``.

Audio is copied as found into ``audio/<corpus>/<class>/``; rows of the same corpus are replaced,
other corpora kept. Missing or unreadable listed files are reported and skipped, never fatal. A
class picture is taken from the middle video frame of the first clip that has frames.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from marssep_core.data.layout import (
    CLASS_COLUMNS,
    IMAGE_COLUMNS,
    METADATA_COLUMNS,
    read_metadata,
    safe_name,
    write_layout,
)
from marssep_core.io_utils import md5_file

log = logging.getLogger(__name__)

LAYOUTS = ("sop", "vggsound", "table")
_PATH_NAMES = ("path", "audio_path", "audio", "file", "clip")
_LABEL_NAMES = ("label", "class")
_AUDIO_EXTS = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
_IMAGE_EXTS = (".jpg", ".jpeg", ".png")


@dataclass
class ImportReport:
    imported: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (listed entry, reason)


def read_listing(csv_path: Path, layout: str, audio_root: Path) -> pd.DataFrame:
    """Normalise a listing to columns ``source, label, frames_path, origin, split_hint``."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    if layout == "sop":
        raw = pd.read_csv(csv_path, header=None, dtype=str, keep_default_na=False)
        sources = raw[0].map(lambda p: _resolve(audio_root, p))
        return pd.DataFrame(
            {
                "source": sources,
                "label": sources.map(lambda p: p.parent.name),
                "frames_path": raw[1].map(lambda p: str(_resolve(audio_root, p))) if raw.shape[1] > 1 else "",
                "origin": sources.map(lambda p: p.stem),
                "split_hint": "",
            }
        )
    if layout == "vggsound":
        raw = pd.read_csv(csv_path, header=None, dtype=str, keep_default_na=False)
        rows = []
        for ytid, start, label, *rest in raw.itertuples(index=False):
            split = rest[0].strip() if rest else ""
            rows.append(
                {
                    "source": _find_vggsound_clip(audio_root, ytid, start),
                    "label": label,
                    "frames_path": "",
                    "origin": ytid,  # clips of one video share an origin
                    "split_hint": "test" if split == "test" else ("trainval" if split == "train" else ""),
                }
            )
        return pd.DataFrame(rows)
    raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    path_col = next((c for c in _PATH_NAMES if c in raw.columns), None)
    label_col = next((c for c in _LABEL_NAMES if c in raw.columns), None)
    if path_col is None or label_col is None:
        raise ValueError(f"{csv_path}: a 'table' CSV needs a path column {_PATH_NAMES} and a label column {_LABEL_NAMES}")
    sources = raw[path_col].map(lambda p: _resolve(audio_root, p))
    return pd.DataFrame(
        {
            "source": sources,
            "label": raw[label_col],
            "frames_path": raw.get("frames_path", pd.Series("", index=raw.index)),
            "origin": raw["origin"] if "origin" in raw.columns else sources.map(lambda p: p.stem),
            "split_hint": raw.get("split", pd.Series("", index=raw.index)).map(
                lambda s: {"test": "test", "train": "trainval", "val": "trainval"}.get(s, "")
            ),
        }
    )


def import_corpus(csv_path: Path, audio_root: Path, raw_dir: Path, layout: str, corpus: str) -> ImportReport:
    """Copy the listed clips into ``raw_dir`` as corpus ``corpus`` and update its tables."""
    corpus = safe_name(corpus)
    listing = read_listing(Path(csv_path), layout, Path(audio_root))
    report = ImportReport()
    rows, images = [], []
    pictured: set[str] = set()
    for entry in listing.itertuples(index=False):
        source = Path(entry.source)
        if not source.is_file():
            report.skipped.append((str(source), "file not found"))
            continue
        if source.stat().st_size == 0:
            report.skipped.append((str(source), "empty file"))
            continue
        label = safe_name(entry.label)
        digest = md5_file(source)
        clip_id = f"{corpus}-{label}-{digest[:10]}"
        rel = Path("audio") / corpus / label / f"{clip_id}{source.suffix.lower()}"
        (raw_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, raw_dir / rel)
        rows.append(
            {
                "clip_id": clip_id,
                "path": rel.as_posix(),
                "class": label,
                "corpus": corpus,
                "origin": f"{corpus}:{entry.origin}",
                "split_hint": entry.split_hint,
                "source_package": f"import:{Path(csv_path).name}",
                "original_path": str(source),
                "licence": "user-supplied",
                "md5": digest,
                "frames_path": entry.frames_path,
            }
        )
        if entry.frames_path and label not in pictured:
            picture = _middle_frame(Path(entry.frames_path))
            if picture is not None:
                images.append(_copy_picture(picture, raw_dir, label, clip_id))
                pictured.add(label)
    report.imported = len(rows)
    for source, reason in report.skipped:
        log.warning("skipped %s: %s", source, reason)
    _merge(raw_dir, corpus, pd.DataFrame(rows, columns=METADATA_COLUMNS), pd.DataFrame(images, columns=IMAGE_COLUMNS))
    return report


def _merge(raw_dir: Path, corpus: str, clips: pd.DataFrame, images: pd.DataFrame) -> None:
    """Replace corpus ``corpus`` in the three tables of ``raw_dir``, keeping other corpora."""
    if (raw_dir / "metadata.csv").is_file():
        old = read_metadata(raw_dir)
        old_images = pd.read_csv(raw_dir / "images.csv", dtype=str, keep_default_na=False)
        old_classes = pd.read_csv(raw_dir / "classes.csv", dtype=str, keep_default_na=False)
    else:
        old = pd.DataFrame(columns=METADATA_COLUMNS)
        old_images = pd.DataFrame(columns=IMAGE_COLUMNS)
        old_classes = pd.DataFrame(columns=CLASS_COLUMNS)
    replaced = set(old.loc[old["corpus"] == corpus, "class"])
    clips = pd.concat([old[old["corpus"] != corpus], clips], ignore_index=True)
    kept_classes = old_classes[(old_classes["corpus"] != corpus)]
    images = pd.concat(
        [old_images[~old_images["class"].isin(replaced | set(clips.loc[clips["corpus"] == corpus, "class"]))], images],
        ignore_index=True,
    )
    new_classes = sorted(set(clips.loc[clips["corpus"] == corpus, "class"]))
    counts = images.groupby("class").size()
    classes = pd.concat(
        [
            kept_classes,
            pd.DataFrame(
                {
                    "class": new_classes,
                    "corpus": corpus,
                    "text": [c.replace("_", " ") for c in new_classes],
                    "n_images": [int(counts.get(c, 0)) for c in new_classes],
                }
            ),
        ],
        ignore_index=True,
    )
    write_layout(raw_dir, clips, images, classes)


def _resolve(root: Path, path: str) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else root / candidate


def _find_vggsound_clip(root: Path, ytid: str, start: str) -> Path:
    for stem in (f"{ytid}_{int(float(start)):06d}", f"{ytid}_{int(float(start))}"):
        for ext in _AUDIO_EXTS:
            for candidate in (root / f"{stem}{ext}", *root.glob(f"*/{stem}{ext}")):
                if candidate.is_file():
                    return candidate
    return root / f"{ytid}_{int(float(start)):06d}.wav"  # reported as missing by the caller


def _middle_frame(frames_dir: Path) -> Path | None:
    if not frames_dir.is_dir():
        return None
    frames = sorted(p for p in frames_dir.iterdir() if p.suffix.lower() in _IMAGE_EXTS)
    return frames[len(frames) // 2] if frames else None


def _copy_picture(picture: Path, raw_dir: Path, label: str, clip_id: str) -> dict[str, str]:
    image_id = f"{label}-frame-{clip_id}"
    rel = Path("images") / label / f"{image_id}{picture.suffix.lower()}"
    (raw_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(picture, raw_dir / rel)
    return {
        "image_id": image_id,
        "class": label,
        "path": rel.as_posix(),
        "kind": "video_frame",
        "source_package": "import",
        "original_path": str(picture),
        "licence": "user-supplied",
        "md5": md5_file(raw_dir / rel),
    }
