"""``marssep data build-default``: the default corpus from Debian packages, built offline.

The build is deterministic (same packages -> same bytes, same ``metadata.csv``): packages and
paths are visited in sorted order, rendered clips depend only on their seed, and no timestamps
are written. It builds into a temporary directory and swaps it into place at the end, so an
interrupted build never leaves a half-written ``data/raw``.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from marssep_core.audio.io import save_audio
from marssep_core.config import CorpusConfig
from marssep_core.data import debian, sources
from marssep_core.data.images import render_emoji
from marssep_core.data.instruments import SoundfontRenderer
from marssep_core.data.layout import origin_of, write_layout
from marssep_core.io_utils import md5_file, replace_dir

log = logging.getLogger(__name__)


def build_default(raw_dir: Path, cfg: CorpusConfig, jobs: int = 2) -> pd.DataFrame:
    """Build the default corpus into ``raw_dir`` (replacing it) and return its metadata."""
    raw_dir = Path(raw_dir)
    cache = Path(cfg.deb_cache_dir)
    packages = {name: debian.fetch_package(name, cache) for name in sources.required_packages()}
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=raw_dir.parent, prefix=".build-") as tmp:
        staging, extract = Path(tmp) / "raw", Path(tmp) / "extract"
        files = _extract_all(packages, extract, cache / "extracted")
        clips = [
            *_everyday_clips(packages, files, staging),
            *_instrument_clips(cfg=cfg, packages=packages, files=files, staging=staging, jobs=jobs),
        ]
        images = _images(cfg, packages, files, staging)
        metadata = pd.DataFrame(clips)
        image_table = pd.DataFrame(images)
        classes = _class_table(metadata, image_table)
        write_layout(staging, metadata, image_table, classes)
        replace_dir(staging, raw_dir)
    log.info("default corpus: %d clips, %d images, %d classes", len(metadata), len(image_table), len(classes))
    return metadata


def _extract_all(
    packages: dict[str, debian.DebPackage], extract: Path, persistent: Path
) -> dict[tuple[str, str], Path]:
    """Extract every file the corpus needs, as ``{(package, in-package path): local file}``.

    Font packages (soundfonts, emoji; 150 MB unpacked) go to a persistent cache and are reused
    by the next build; sound and photo files go to the build's temporary directory.
    """
    rules = [(rule, re.compile(rule.pattern)) for rule in sources.SOUND_RULES]
    photos = {(pkg, path) for info in sources.CLASSES.values() for pkg, path in info.photos}
    fonts = set(sources.SOUNDFONT_PACKAGES.values()) | {sources.EMOJI_FONT}
    font_packages = {pkg for pkg, _ in fonts}
    files: dict[tuple[str, str], Path] = {}
    for name, package in tqdm(sorted(packages.items()), desc="extract packages", unit="pkg"):
        wanted_fixed = {debian.copyright_path(name)} | {p for pkg, p in fonts | photos if pkg == name}
        dest = persistent / name if name in font_packages else extract / name
        if name in font_packages and all((dest / p).is_file() for p in wanted_fixed):
            files.update({(name, p): dest / p for p in wanted_fixed})
            continue

        archives = set(sources.ARCHIVES.get(name, ()))
        own_rules = [regex for rule, regex in rules if rule.package == name]
        wanted_fixed |= archives

        def matches(path: str, own_rules: list[re.Pattern] = own_rules) -> bool:
            return any(regex.fullmatch(path) for regex in own_rules)

        def want(path: str, fixed: set[str] = wanted_fixed, matches=matches) -> bool:
            return path in fixed or matches(path)

        for path, local in debian.extract_members(package.path, want, dest).items():
            if path in archives:  # only the matching members are kept, not the (3 GB) archive
                unzipped = debian.extract_zip_members(local, path, matches, dest.with_name(f"{dest.name}-unzipped"))
                files.update({(name, member): member_file for member, member_file in unzipped.items()})
                local.unlink()
            else:
                files[(name, path)] = local
    return files


def _everyday_clips(
    packages: dict[str, debian.DebPackage], files: dict[tuple[str, str], Path], staging: Path
) -> list[dict[str, str]]:
    """Copy every clip a rule matches, once per distinct content (md5), with its licence."""
    rules = [(rule, re.compile(rule.pattern)) for rule in sources.SOUND_RULES]
    licences = {
        name: debian.CopyrightIndex(files[(name, debian.copyright_path(name))].read_text(errors="replace"))
        for name in sources.SOUND_PACKAGES
    }
    by_md5: dict[str, dict[str, str]] = {}
    for (package, path), local in sorted(files.items()):
        rule = next((r for r, regex in rules if r.package == package and regex.fullmatch(path)), None)
        if rule is None:
            continue
        digest = md5_file(local)
        if digest in by_md5:  # identical bytes shipped twice: keep the first, remember the other
            first = by_md5[digest]
            first["also_found_in"] = ";".join(filter(None, [first["also_found_in"], f"{package}:{path}"]))
            continue
        info = sources.CLASSES[rule.label]
        clip_id = f"{rule.label}-{digest[:10]}"
        rel = Path("audio") / info.corpus / rule.label / f"{clip_id}{Path(path).suffix.lower()}"
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, staging / rel)
        by_md5[digest] = {
            "clip_id": clip_id,
            "path": rel.as_posix(),
            "class": rule.label,
            "corpus": info.corpus,
            "origin": origin_of(package, path),
            "split_hint": "",
            "source_package": package,
            "package_version": packages[package].version,
            "original_path": path,
            "licence": licences[package].licence(path),
            "md5": digest,
            "also_found_in": "",
        }
    return list(by_md5.values())


def _render_soundfont(args: tuple[str, Path, CorpusConfig, Path, str]) -> list[dict[str, str]]:
    """Render every clip of one soundfont (one process per soundfont: each loads it once)."""
    font_key, soundfont, cfg, staging, version = args
    icfg = cfg.instruments
    count = icfg.fluid_clips_per_class if font_key == "fluidr3" else icfg.musescore_clips_per_class
    base = icfg.fluid_seed_base if font_key == "fluidr3" else icfg.musescore_seed_base
    package, font_path = sources.SOUNDFONT_PACKAGES[font_key]
    programs = icfg.programs or sources.GM_PROGRAMS
    renderer = SoundfontRenderer(soundfont, icfg.render_sample_rate, icfg.gain)
    rows = []
    try:
        for label, program in sorted(programs.items()):
            for index in range(count):
                seed = base + program * 1000 + index
                audio = renderer.render(program, seed, icfg.clip_seconds)
                clip_id = f"{label}-{font_key}-{seed}"
                rel = Path("audio") / sources.INSTRUMENTS / label / f"{clip_id}.wav"
                save_audio(staging / rel, audio, icfg.render_sample_rate, subtype="PCM_16")
                rows.append(
                    {
                        "clip_id": clip_id,
                        "path": rel.as_posix(),
                        "class": label,
                        "corpus": sources.INSTRUMENTS,
                        "origin": f"{font_key}:{label}:{seed}",
                        "split_hint": "test" if font_key == "musescore" else "trainval",
                        "source_package": package,
                        "package_version": version,
                        "original_path": f"{font_path}#program={program}&seed={seed}",
                        "licence": "MIT",
                        "md5": md5_file(staging / rel),
                        "also_found_in": "",
                    }
                )
    finally:
        renderer.close()
    return rows


def _instrument_clips(
    cfg: CorpusConfig,
    packages: dict[str, debian.DebPackage],
    files: dict[tuple[str, str], Path],
    staging: Path,
    jobs: int,
) -> list[dict[str, str]]:
    tasks = []
    for font_key, (package, font_path) in sorted(sources.SOUNDFONT_PACKAGES.items()):
        tasks.append((font_key, files[(package, font_path)], cfg, staging, packages[package].version))
    if jobs <= 1:
        results = [_render_soundfont(task) for task in tasks]
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
            results = list(tqdm(pool.map(_render_soundfont, tasks), total=len(tasks), desc="render soundfonts"))
    return [row for rows in results for row in rows]


def _images(
    cfg: CorpusConfig,
    packages: dict[str, debian.DebPackage],
    files: dict[tuple[str, str], Path],
    staging: Path,
) -> list[dict[str, str]]:
    """Tux Paint photos as found, plus an emoji picture where the font has the glyph."""
    font = files[sources.EMOJI_FONT]
    font_licence = debian.CopyrightIndex(
        files[(sources.EMOJI_FONT[0], debian.copyright_path(sources.EMOJI_FONT[0]))].read_text(errors="replace")
    ).licence(sources.EMOJI_FONT[1])
    rows = []
    for label, info in sorted(sources.CLASSES.items()):
        for package, path in info.photos:
            image_id = f"{label}-photo-{Path(path).stem}"
            rel = Path("images") / label / f"{image_id}{Path(path).suffix}"
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(files[(package, path)], staging / rel)
            licence = debian.CopyrightIndex(
                files[(package, debian.copyright_path(package))].read_text(errors="replace")
            ).licence(path)
            rows.append(
                _image_row(
                    image_id=image_id, label=label, rel=rel, kind="photo", package=package, original=path, licence=licence, staging=staging
                )
            )
        if info.emoji:
            picture = render_emoji(font, info.emoji, size=cfg.image_size, font_size=cfg.emoji_size)
            if picture is None:
                log.warning("class %s: emoji U+%04X missing from the font; no emoji picture", label, ord(info.emoji))
                continue
            image_id = f"{label}-emoji"
            rel = Path("images") / label / f"{image_id}.png"
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            picture.save(staging / rel, format="PNG")
            original = f"{sources.EMOJI_FONT[1]}#U+{ord(info.emoji):04X}"
            rows.append(
                _image_row(
                    image_id=image_id,
                    label=label,
                    rel=rel,
                    kind="emoji",
                    package=sources.EMOJI_FONT[0],
                    original=original,
                    licence=font_licence,
                    staging=staging,
                )
            )
    return rows


def _image_row(
    image_id: str, label: str, rel: Path, kind: str, package: str, original: str, licence: str, staging: Path
) -> dict[str, str]:
    return {
        "image_id": image_id,
        "class": label,
        "path": rel.as_posix(),
        "kind": kind,
        "source_package": package,
        "original_path": original,
        "licence": licence,
        "md5": md5_file(staging / rel),
    }


def _class_table(metadata: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    counts = images.groupby("class").size() if len(images) else pd.Series(dtype=int)
    rows = [
        {"class": label, "corpus": info.corpus, "text": info.text, "n_images": int(counts.get(label, 0))}
        for label, info in sources.CLASSES.items()
        if label in set(metadata["class"])
    ]
    return pd.DataFrame(rows)
