"""Shared fixtures: a tiny generated corpus in the ``data/raw`` layout and a tiny clean profile."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from marssep_core.audio.io import save_audio
from marssep_core.config import CleanConfig, IngestConfig, LabelFilterConfig, TestPairsConfig
from marssep_core.data.layout import write_layout
from marssep_core.io_utils import md5_file

SR = 16000


def pytest_configure(config):
    """Prefect (flow tests, the local stack) keeps its files in a throw-away PREFECT_HOME, never
    ~/.prefect, and sends no analytics; set before any test imports prefect."""
    import os
    import tempfile

    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="marssep-prefect-home-")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"


def pytest_unconfigure(config):
    import os
    import shutil

    home = os.environ.get("PREFECT_HOME", "")
    if "marssep-prefect-home-" in home:
        shutil.rmtree(home, ignore_errors=True)


def _envelope(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random note onsets with exponential decays, so every clip has a distinct time course."""
    env = np.zeros(n)
    for start in np.sort(rng.integers(0, n - n // 8, size=rng.integers(2, 5))):
        length = n - start
        env[start:] += np.exp(-np.arange(length) / (SR * rng.uniform(0.05, 0.3)))
    return env / env.max()


def synth_clip(kind: str, seed: int, seconds: float = 1.0) -> np.ndarray:
    """A generated clip of class ``kind``: distinct spectra per class, distinct timing per seed."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    if kind in ("tone", "low"):
        f0 = rng.uniform(200, 400) if kind == "tone" else rng.uniform(80, 150)
        wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    elif kind == "noise":
        wave = np.convolve(rng.standard_normal(n), np.ones(3) / 3, mode="same")
    elif kind == "chirp":
        f_start = rng.uniform(500, 1000)
        wave = np.sin(2 * np.pi * (f_start * t + 1500 * t**2))
    elif kind == "high":
        wave = np.sin(2 * np.pi * rng.uniform(2500, 3500) * t)
    elif kind == "square":
        wave = np.sign(np.sin(2 * np.pi * rng.uniform(300, 500) * t))
    else:
        raise ValueError(kind)
    wave = wave * _envelope(rng, n)
    return (0.5 * wave / np.max(np.abs(wave))).astype(np.float32)


TINY_CLASSES = {"sounds": ("tone", "noise", "chirp"), "inst": ("low", "high", "square")}


def write_cross_source(directory: Path, clips_per_class: int = 2) -> Path:
    """A generated cross-source set (``data/cross_source`` layout) of the tiny corpus's classes,
    from seeds the tiny corpus does not use."""
    from marssep_core.data.cross_source import COLUMNS, TABLE

    rows = []
    for corpus, kinds in TINY_CLASSES.items():
        for kind in kinds:
            for index in range(clips_per_class):
                clip_id = f"{kind}-x{index}"
                rel = Path("audio") / corpus / kind / f"{clip_id}.wav"
                save_audio(directory / rel, synth_clip(kind, 10_000 + 17 * index + len(rows), 1.5), SR)
                rows.append({"clip_id": clip_id, "path": rel.as_posix(), "class": kind, "corpus": corpus,
                             "origin": f"generated:{clip_id}", "source_package": "generated", "package_version": "0",
                             "original_path": "tests/conftest.py", "licence": "CC0", "md5": md5_file(directory / rel)})
    pd.DataFrame(rows, columns=COLUMNS).to_csv(directory / TABLE, index=False)
    return directory


def make_tiny_corpus(raw: Path, clips_per_class: int = 10) -> pd.DataFrame:
    """Write a generated corpus (2 corpora x 3 classes) in the ``data/raw`` layout."""
    rows, images, classes = [], [], []
    seed = 0
    for corpus, kinds in TINY_CLASSES.items():
        for kind in kinds:
            for index in range(clips_per_class):
                seed += 1
                clip_id = f"{kind}-{index:03d}"
                rel = Path("audio") / corpus / kind / f"{clip_id}.wav"
                save_audio(raw / rel, synth_clip(kind, seed), SR, subtype="PCM_16")
                rows.append(
                    {
                        "clip_id": clip_id,
                        "path": rel.as_posix(),
                        "class": kind,
                        "corpus": corpus,
                        # pairs of takes share an origin, like Dog1/Dog2 in a real package
                        "origin": f"gen:{kind}:{index // 2}",
                        "split_hint": "",
                        "source_package": "generated",
                        "original_path": f"synth_clip({kind!r}, {seed})",
                        "licence": "CC0",
                        "md5": md5_file(raw / rel),
                    }
                )
            picture = Path("images") / kind / f"{kind}-gen.png"
            (raw / picture).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 32), (seed % 255, 80, 160)).save(raw / picture)
            images.append({"image_id": f"{kind}-gen", "class": kind, "path": picture.as_posix(), "kind": "generated"})
            classes.append({"class": kind, "corpus": corpus, "text": f"a {kind} sound", "n_images": 1})
    metadata = pd.DataFrame(rows)
    write_layout(raw, metadata, pd.DataFrame(images), pd.DataFrame(classes))
    return metadata


@pytest.fixture
def tiny_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    make_tiny_corpus(raw)
    return raw


@pytest.fixture
def ingest_cfg() -> IngestConfig:
    return IngestConfig(workers=1)


@pytest.fixture
def clean_cfg() -> CleanConfig:
    """The tiny profile: few pairs, three label-filter folds."""
    return dataclasses.replace(
        CleanConfig(),
        label_filter=LabelFilterConfig(folds=3, top_k=1, min_class_clips=8),
        test_pairs=TestPairsConfig(pairs_per_corpus=12, crop_seconds=0.5),
    )


@dataclasses.dataclass
class SeparatorAssets:
    """Everything the separator stages read, built once from the tiny corpus: raw corpus, audio
    bank, test pairs, an (untrained) tiny encoder and its query bank."""

    root: Path
    raw: Path
    bank: Path
    pairs: pd.DataFrame
    encoder: Path
    queries: Path
    cross_source: Path


def supervised_paths(assets: SeparatorAssets, out: Path, sep: str = "sep.pt", metrics: str = "m.json", history: str = "h.csv"):
    """``SupervisedPaths`` for a tiny training run on ``assets`` writing into ``out`` (the test pairs
    are written there as the CSV the stage reads)."""
    from marssep_core.separation.stages import SupervisedPaths

    out.mkdir(parents=True, exist_ok=True)
    assets.pairs.to_csv(out / "test_pairs.csv", index=False)
    return SupervisedPaths(raw=assets.raw, bank=assets.bank, queries=assets.queries, pairs=out / "test_pairs.csv",
                           out=out / sep, metrics=out / metrics, history=out / history, run_dir=out / "run")


@pytest.fixture(scope="session")
def separator_assets(tmp_path_factory) -> SeparatorAssets:
    import torch

    from marssep_core.data.audio_bank import build_audio_bank
    from marssep_core.data.stages import run_clean, run_ingest
    from marssep_core.encoders.imagebind import ImageBindModel, tiny
    from marssep_core.encoders.store import save_encoder
    from marssep_core.separation.embed_queries import run_embed_queries

    root = tmp_path_factory.mktemp("separator_assets")
    raw = root / "raw"
    make_tiny_corpus(raw)
    catalog = run_ingest(raw, root / "catalog", IngestConfig(workers=1))
    clean = dataclasses.replace(
        CleanConfig(),
        label_filter=LabelFilterConfig(folds=3, top_k=1, min_class_clips=8),
        test_pairs=TestPairsConfig(pairs_per_corpus=6, crop_seconds=0.5),
    )
    result = run_clean(raw_dir=raw, catalog=catalog, out_dir=root / "clean", metrics_path=root / "data.json", cfg=clean)
    build_audio_bank(raw_dir=raw, clips=result.clean, out_dir=root / "bank", sample_rate=SR, max_seconds=10.0, workers=1)
    torch.manual_seed(0)
    save_encoder(root / "encoder.pt", ImageBindModel(tiny()), 0.07, {"stage": "stage3"})
    run_embed_queries(root / "encoder.pt", raw, root / "bank", root / "queries.pt")
    return SeparatorAssets(root=root, raw=raw, bank=root / "bank", pairs=result.pairs, encoder=root / "encoder.pt",
                           queries=root / "queries.pt", cross_source=write_cross_source(root / "cross_source"))


TINY_SEPARATOR_PARAMS = {
    "model": {"warp_bins": 32, "downs": 3, "channels": 4, "mask_channels": 4, "film": True},
    "mixing": {"crop_seconds": 0.5},
    "loop": {"steps": 6, "batch_size": 4, "warmup": 1, "eval_every": 3, "checkpoint_every": 2, "device": "cpu"},
    "validation": {"pairs_per_corpus": 4, "crop_seconds": 0.5, "batch": 8},
}

TINY_JUDGE_PARAMS = {
    "model": {"channels": [4, 8], "embed_dim": 16},
    "train": {"crop_seconds": 0.5, "loop": {"steps": 80, "batch_size": 12, "warmup": 5, "lr": 0.01, "eval_every": 40, "device": "cpu"}},
}

TINY_RL_PARAMS = {
    "group_size": 2,
    "mixing": {"crop_seconds": 0.5},
    "loop": {"steps": 4, "batch_size": 4, "warmup": 1, "lr": 0.001, "eval_every": 2, "checkpoint_every": 2, "device": "cpu"},
    "validation": {"pairs_per_corpus": 4, "crop_seconds": 0.5, "batch": 8},
}


@pytest.fixture(scope="session")
def tiny_separator(separator_assets, tmp_path_factory) -> Path:
    """A tiny separator trained for a few steps on the tiny corpus (its encoder: the assets')."""
    import json

    from marssep_core.config import AudioConfig, build
    from marssep_core.separation.stages import SupervisedConfig, run_supervised_stage

    out = tmp_path_factory.mktemp("tiny_separator")
    cfg = build(SupervisedConfig, json.loads(json.dumps(TINY_SEPARATOR_PARAMS)))
    run_supervised_stage(cfg=cfg, audio=AudioConfig(), paths=supervised_paths(separator_assets, out))
    return out / "sep.pt"


@pytest.fixture(scope="session")
def tiny_bundle(tiny_separator, tmp_path_factory) -> Path:
    """``tiny_separator`` exported to an ONNX bundle (mask network and all three towers)."""
    from marssep_core.serving.export import export_bundle

    out = tmp_path_factory.mktemp("tiny_bundle") / "onnx"
    export_bundle(tiny_separator, out)
    return out


ROOT = Path(__file__).resolve().parents[1]


def run_tool(args: list[str], cwd: Path, timeout: float = 600) -> str:
    """Run a project tool (dvc, git, marssep) with this interpreter's bin first on PATH; assert exit 0."""
    import subprocess

    from marssep_core.orchestration.commands import tool_env

    proc = subprocess.run(args, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def tiny_params() -> dict:
    """params.yaml with the tiny profile: few steps, small models, few test pairs."""
    import json

    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ingest"]["workers"] = 1
    params["clean"]["label_filter"].update(folds=3, top_k=1, min_class_clips=8)
    params["clean"]["test_pairs"].update(pairs_per_corpus=12, crop_seconds=0.5)
    params["prepare_audio"]["workers"] = 1
    for stage in ("pretrain", "stage1", "stage2", "stage3"):
        params["encoder"][stage]["loop"].update(steps=3, batch_size=8, eval_every=3, warmup=1, device="cpu")
    params["encoder"]["fusion"]["loop"].update(steps=3, batch_size=8, eval_every=3, device="cpu")
    params["train_supervised"] = json.loads(json.dumps(TINY_SEPARATOR_PARAMS))
    # merged: an experiment in the smoke test sets judge.train.loop.seed
    params["judge"]["model"].update(TINY_JUDGE_PARAMS["model"])
    params["judge"]["train"]["crop_seconds"] = TINY_JUDGE_PARAMS["train"]["crop_seconds"]
    params["judge"]["train"]["loop"].update(TINY_JUDGE_PARAMS["train"]["loop"])
    params["evaluate"].update(workers=1, figures_per_corpus=1)
    params["rl"].update(json.loads(json.dumps(TINY_RL_PARAMS)))
    return params


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """The real dvc.yaml, pipeline/, flows/ and prefect.yaml on the tiny corpus and profile, fully
    reproduced (``dvc repro``) and committed as the git baseline, with a local DVC remote.
    Tests that change it work on a copy (:func:`copy_project`)."""
    import shutil

    import yaml

    base = tmp_path_factory.mktemp("tiny_project")
    project = base / "project"
    project.mkdir()
    for name in ("dvc.yaml", "pipeline", "flows", "prefect.yaml"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, project / name)
    # marssep_core is a dependency path of the stages: link the real package in.
    (project / "marssep_core").symlink_to(ROOT / "marssep_core")
    (project / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    (project / ".gitignore").write_text("__pycache__/\n/runs/\n/.prefect/\n")
    make_tiny_corpus(project / "data" / "raw")
    from tests.soundfont_fixture import write_soundfont_folder

    write_soundfont_folder(project / "data" / "soundfonts", ["fluidr3", "csound_gm"], [0, 40])
    write_cross_source(project / "data" / "cross_source")
    run_tool(["git", "init", "-q"], project)
    run_tool(["dvc", "init", "-q"], project)
    shutil.copyfile(ROOT / ".dvcignore", project / ".dvcignore")  # as the repo: bytecode is no dependency
    run_tool(["dvc", "remote", "add", "-d", "store", str(base / "remote")], project)
    run_tool(["dvc", "add", "-q", "data/raw", "data/soundfonts", "data/cross_source"], project)
    run_tool(["dvc", "repro"], project)
    run_tool(["git", "add", "-A"], project)
    run_tool(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"], project)
    return project


def copy_project(source: Path, dest: Path) -> Path:
    """A copy of a project (git history, DVC cache and outputs; the marssep_core link kept)."""
    import shutil

    shutil.copytree(source, dest, symlinks=True)
    return dest
