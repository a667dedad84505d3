"""Fetch Debian data packages and read files out of them without installing anything.

``apt-get download`` fetches the ``.deb`` into a cache directory; ``dpkg-deb --fsys-tarfile``
streams its data archive, from which only the members we need are extracted. Licences are
looked up per file in the package's machine-readable (DEP-5) copyright file.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class PackageError(RuntimeError):
    """A Debian package that could not be fetched or read."""


@dataclass(frozen=True)
class DebPackage:
    """A downloaded ``.deb``: its name, version and file path."""

    name: str
    version: str
    path: Path


def fetch_package(name: str, cache_dir: Path) -> DebPackage:
    """Return the cached ``.deb`` for ``name``, downloading it with ``apt-get download`` if needed."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(cache_dir.glob(f"{name}_*.deb"))
    if not found:
        proc = subprocess.run(
            ["apt-get", "download", name], cwd=cache_dir, capture_output=True, text=True, check=False
        )
        found = sorted(cache_dir.glob(f"{name}_*.deb"))
        if proc.returncode != 0 or not found:
            raise PackageError(
                f"apt-get download {name} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}\n"
                "Run 'apt-get update' first; the package must be in Debian 12 (bookworm) main."
            )
    return DebPackage(name=name, version=_field(found[-1], "Version"), path=found[-1])


def _field(deb: Path, field: str) -> str:
    proc = subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PackageError(f"{deb}: not a readable .deb ({proc.stderr.strip()})")
    return proc.stdout.strip()


def extract_members(
    deb: Path, want: Callable[[str], bool], dest: Path
) -> dict[str, Path]:
    """Extract regular files of ``deb`` whose normalised path satisfies ``want`` into ``dest``.

    Paths are normalised without the leading ``./``. Returns ``{in-package path: extracted file}``.
    Members are streamed, so a 400 MB package never lands on disk whole, and each member is
    copied in blocks (0 A.D.'s data archive is a single 3 GB file).
    """
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    extracted: dict[str, Path] = {}
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            for member in archive:
                name = member.name.removeprefix("./")
                if not member.isfile() or not want(name):
                    continue
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                with target.open("wb") as sink:
                    shutil.copyfileobj(source, sink, length=1 << 22)
                extracted[name] = target
    finally:
        proc.stdout.close()
        if proc.wait() != 0:
            raise PackageError(f"{deb}: dpkg-deb --fsys-tarfile failed (exit {proc.returncode})")
    return extracted


def extract_zip_members(
    archive: Path, archive_path: str, want: Callable[[str], bool], dest: Path
) -> dict[str, Path]:
    """Extract the members of a zip file a package ships whose path satisfies ``want``.

    A member's path is ``<archive_path>/<name inside the zip>``, so rules, origins and the
    copyright lookup treat it like any other file of the package. Returns ``{path: extracted file}``
    with the files under ``dest``; a corrupt archive raises ``PackageError`` naming it.
    """
    extracted: dict[str, Path] = {}
    try:
        with zipfile.ZipFile(archive) as bundle:
            for info in sorted(bundle.infolist(), key=lambda i: i.filename):
                path = f"{archive_path}/{info.filename}"
                if info.is_dir() or not want(path):
                    continue
                target = dest / path
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(info) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink, length=1 << 22)
                extracted[path] = target
    except zipfile.BadZipFile as err:
        raise PackageError(f"{archive_path} ({archive}): not a readable zip archive: {err}") from err
    return extracted


def copyright_path(package: str) -> str:
    return f"usr/share/doc/{package}/copyright"


class CopyrightIndex:
    """Per-file licence lookup in a DEP-5 copyright file.

    Debian ``Files:`` globs are relative to the upstream source tree, while we look up installed
    paths (``usr/share/games/x/Data/Sounds/a.ogg`` for ``share/x/Data/Sounds/*``). A glob matches
    an installed path when one of its tails (the glob with leading directories dropped, keeping at
    least a directory and a name) matches the end of the path. The most specific match wins (most
    path components matched, then fewest leading directories dropped), ties going to the later
    paragraph as DEP-5 prescribes. Files with no match
    get the ``Files: *`` licence, or ``unknown``.
    """

    def __init__(self, text: str):
        self.paragraphs: list[tuple[list[str], str]] = []
        for block in re.split(r"\n\s*\n", text):
            files = _dep5_field(block, "Files")
            licence = _dep5_field(block, "License")
            if files and licence:
                self.paragraphs.append((files.split(), licence.splitlines()[0].strip()))

    def licence(self, installed_path: str) -> str:
        best: tuple[tuple[int, int], int, str] | None = None
        for order, (globs, licence) in enumerate(self.paragraphs):
            for pattern in globs:
                score = _glob_specificity(pattern, installed_path)
                if score is not None and (best is None or (score, order) >= best[:2]):
                    best = (score, order, licence)
        return best[2] if best else "unknown"


def _dep5_field(block: str, name: str) -> str:
    match = re.search(rf"^{name}:[ \t]*(.*(?:\n[ \t]+.*)*)", block, flags=re.MULTILINE)
    return match.group(1).strip() if match else ""


def _glob_specificity(pattern: str, path: str) -> tuple[int, int] | None:
    """``(components matched, -components dropped)`` of the best tail of ``pattern`` matching
    the end of ``path``, or ``None``. ``*`` alone matches everything with the lowest score."""
    if pattern == "*":
        return (0, 0)
    parts = pattern.split("/")
    for drop in range(0, max(1, len(parts) - 1)):
        tail = "/".join(parts[drop:])
        if fnmatch.fnmatchcase(path, tail) or fnmatch.fnmatchcase(path, "*/" + tail):
            return (len(parts) - drop, -drop)
    return None
