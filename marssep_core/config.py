"""Typed configuration: one dataclass per ``params.yaml`` section.

``load_section(SectionClass, "name", params_path)`` reads one section and builds the dataclass,
recursing into nested dataclasses. Unknown keys are an error that names the key and the file, so a
typo in ``params.yaml`` (or in ``dvc exp run -S``) never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A params file or section that does not match its dataclass."""


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """``audio``: fixed signal settings every stage shares."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256


@dataclasses.dataclass(frozen=True)
class InstrumentCorpusConfig:
    """Instrument clips rendered from General MIDI soundfonts (the MUSIC stand-in)."""

    programs: dict[str, int] = dataclasses.field(default_factory=dict)
    fluid_clips_per_class: int = 48
    musescore_clips_per_class: int = 16
    clip_seconds: float = 6.0
    render_sample_rate: int = 16000
    gain: float = 0.6
    fluid_seed_base: int = 1_000_000
    musescore_seed_base: int = 2_000_000


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    """``corpus``: how ``marssep data build-default`` assembles ``data/raw``."""

    instruments: InstrumentCorpusConfig = dataclasses.field(default_factory=InstrumentCorpusConfig)
    deb_cache_dir: str = ".cache/debs"
    emoji_size: int = 109
    image_size: int = 224


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    """``ingest``: how the catalog measures each clip."""

    analysis_sample_rate: int = 16000
    silence_rel_db: float = -50.0  # a frame is silent this far below the clip's loudest frame
    frame_seconds: float = 0.05
    clip_threshold: float = 0.999
    fingerprint_sample_rate: int = 8000
    fingerprint_frames: int = 128
    workers: int = 2


@dataclasses.dataclass(frozen=True)
class PrepareAudioConfig:
    """``prepare_audio``: the audio bank every training stage reads."""

    max_seconds: float = 10.0  # longer clips are cut: training crops are a few seconds
    workers: int = 2


@dataclasses.dataclass(frozen=True)
class LabelFilterConfig:
    """Out-of-fold label-consistency filter."""

    enabled: bool = True
    folds: int = 5
    top_k: int = 5
    min_class_clips: int = 10
    inverse_regularization: float = 0.01  # logistic regression C: strong, few clips per class
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class TestPairsConfig:
    """The fixed, versioned evaluation pairs."""

    __test__ = False  # not a pytest test class

    pairs_per_corpus: int = 300
    snr_db_min: float = -5.0
    snr_db_max: float = 5.0
    crop_seconds: float = 4.0
    seed: int = 1234
    # a crop holds at least this much sound (or as much as the clip has in any crop)
    min_active_seconds: float = 1.0
    active_frame_seconds: float = 0.05
    active_rel_db: float = -50.0  # a frame holds sound within this of the clip's loudest frame


@dataclasses.dataclass(frozen=True)
class CleanConfig:
    """``clean``: drop rules, split fractions, label filter and test pairs."""

    min_seconds: float = 0.12
    max_channels: int = 2
    min_sample_rate: int = 8000
    silent_peak: float = 1e-4
    max_silent_ratio: float = 0.9
    max_clipping_ratio: float = 0.01
    min_bandwidth_hz: float = 4000.0  # below: kept, flagged band_limited
    near_duplicate_max_distance: float = 0.3
    near_duplicate_min_frames: int = 8
    split_fractions: dict[str, float] = dataclasses.field(
        default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15}
    )
    split_seed: int = 0
    label_filter: LabelFilterConfig = dataclasses.field(default_factory=LabelFilterConfig)
    test_pairs: TestPairsConfig = dataclasses.field(default_factory=TestPairsConfig)


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read a params YAML file into a dict (an empty file gives ``{}``)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return data


def build(cls: type[T], values: dict[str, Any] | None, where: str = "", base: T | None = None) -> T:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclass fields.

    Keys left out keep ``base``'s values (default: ``cls``'s defaults); a nested mapping starts
    from its field's default in the enclosing class, so ``{"loop": {"lr": 0.1}}`` keeps the rest
    of the section's own loop settings (e.g. the ``rl`` section's), not ``LoopConfig``'s."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{name}: expected a mapping, got {value!r}")
            value = build(hint, value, f"{where}.{name}", getattr(base, name) if base is not None else field_default(fields[name]))
        else:
            value = _coerce(hint, value, f"{where}.{name}")
        kwargs[name] = value
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def field_default(field: dataclasses.Field) -> Any:
    """A dataclass field's default value (``None`` when it has none)."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


_YAML11_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check scalars against their annotation; YAML ints are accepted where floats are expected,
    and so is exponent notation without a dot (``5e-05``, as ``dvc exp run -S`` writes it), which
    PyYAML's YAML 1.1 resolver reads as a string."""
    origin = typing.get_origin(hint)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str) and _YAML11_EXPONENT.fullmatch(value.strip()):
        return float(value)
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    if origin is dict and not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    if origin in (list, tuple) and not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    if origin in (typing.Union, types.UnionType) and value is None:
        return None
    return value


def load_section(cls: type[T], name: str, path: str | Path = "params.yaml") -> T:
    """Build the dataclass for section ``name`` of the params file at ``path``."""
    params = load_params(path)
    return build(cls, params.get(name), f"{path}:{name}")


def overlay_assignments(overlay: dict[str, Any], prefix: str = "") -> list[str]:
    """Flatten a params overlay (e.g. ``profiles/paper.yaml``) into ``dvc exp run -S`` values:
    ``{"a": {"b": 1}}`` -> ``["a.b=1"]``. Lists and scalars are written as inline YAML."""
    out = []
    for key, value in overlay.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += overlay_assignments(value, f"{name}.")
        else:
            out.append(f"{name}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}")
    return out
