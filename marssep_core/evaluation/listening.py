"""The listening page: ``reports/eval.html`` with ``reports/eval_files/`` beside it.

The evaluation's tables (SI-SDRi, SDR, CLAP_t per corpus, query modality and system), then per
corpus and query modality four fixed test pairs, picked by the supervised model's SI-SDRi: the
best, the median, the worst and one drawn with a fixed seed. Each example has players for the
mixture, the clean target, the query (text shown, reference audio playable, picture shown) and each
system's output, one spectrogram figure, and each output's SI-SDRi and judge score (CLAP_t) from
``metrics/eval_pairs.csv``. Audio is 16-bit FLAC at the model rate; the folder is self-contained.

    write_listening_page(pairs, table, summary, bank, queries, separators, audio, raw_dir, report_dir)
    rebuild_listening_page(...)   # the same from the evaluate stage's outputs (``marssep report``)
    print(summary_text(metrics))  # the short summary scripts/main.sh ends with
"""

from __future__ import annotations

import html
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from marssep_core.audio.io import save_audio
from marssep_core.audio.stft import STFT
from marssep_core.config import AudioConfig
from marssep_core.data.audio_bank import AudioBank
from marssep_core.evaluation.figures import spectrogram_figure
from marssep_core.evaluation.report import MODALITY_NAME, markdown_table
from marssep_core.evaluation.runner import load_pair_signals
from marssep_core.io_utils import write_text_atomic
from marssep_core.separation.evaluate import oracle_irm, separate_batch
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import Separator

PICKS = ("best", "median", "worst", "random")
RANDOM_PICK_SEED = 20261127  # the fixed "random" example: the same pair on every run
PAGE, FILES = "eval.html", "eval_files"


@dataclass(frozen=True)
class Example:
    corpus: str
    modality: str
    pick: str
    pair_id: str


def pick_examples(table: pd.DataFrame, system: str = "supervised") -> list[Example]:
    """Per corpus and modality: ``system``'s best, median and worst pair by SI-SDRi, and a seeded pick."""
    rows = table[(table["system"] == system) & (table["error"].fillna("") == "")]
    examples = []
    order = {modality: k for k, modality in enumerate(MODALITY_NAME)}
    for (corpus, modality), part in sorted(rows.groupby(["corpus", "modality"]), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99))):
        ordered = part.sort_values(["si_sdri", "pair_id"], ascending=[False, True])["pair_id"].tolist()
        chosen = {"best": ordered[0], "median": ordered[len(ordered) // 2], "worst": ordered[-1],
                  "random": ordered[np.random.default_rng(RANDOM_PICK_SEED).integers(len(ordered))]}
        examples += [Example(str(corpus), str(modality), pick, chosen[pick]) for pick in PICKS]
    return examples


def write_listening_page(pairs: pd.DataFrame, table: pd.DataFrame, summary: dict[str, Any], bank: AudioBank, queries: QueryBank,
                         separators: dict[str, Separator], audio: AudioConfig, raw_dir: Path, report_dir: Path) -> Path:
    """Write ``report_dir/eval.html`` and ``report_dir/eval_files/`` (replaced); returns the page."""
    files = report_dir / FILES
    if files.exists():
        shutil.rmtree(files)
    (files / "audio").mkdir(parents=True)
    (files / "figures").mkdir()
    (files / "images").mkdir()
    examples = pick_examples(table) if "supervised" in separators else []
    chosen = pairs[pairs["pair_id"].isin({e.pair_id for e in examples})].reset_index(drop=True)
    signals = load_pair_signals(
        pairs=chosen, bank=bank, queries=queries, modalities=tuple(sorted({e.modality for e in examples})), errors=[]
    )
    row_of = {pid: i for i, pid in enumerate(chosen["pair_id"])}
    oracle = oracle_irm(STFT.from_config(audio), signals.mixture, signals.target, signals.interferer)
    outputs = {(name, modality): separate_batch(separator, signals.mixture, signals.queries[modality])
               for name, separator in separators.items() for modality in signals.queries}
    scores = table.set_index(["pair_id", "system", "modality"])
    systems = [*separators, "oracle_irm"]
    sections, current = [], None
    for example in examples:
        if (example.corpus, example.modality) != current:
            current = (example.corpus, example.modality)
            sections.append(f"<h3 id='{example.corpus}-{example.modality}'>{html.escape(example.corpus)}: "
                            f"{html.escape(MODALITY_NAME.get(example.modality, example.modality))} queries</h3>")
        row = row_of[example.pair_id]
        pair = chosen.iloc[row]
        waves = {"mixture": signals.mixture[row], "target": signals.target[row], "oracle_irm": oracle[row],
                 **{name: outputs[(name, example.modality)][row] for name in separators}}
        stem = f"{example.pair_id}-{example.modality}"
        players = [_player(files=files, name=f"{example.pair_id}-mixture", wave=waves["mixture"], rate=bank.sample_rate,
                           label=f"mixture ({pair['snr_db']:+.1f} dB SNR)"),
                   _player(files=files, name=f"{example.pair_id}-target", wave=waves["target"], rate=bank.sample_rate,
                           label=f"clean target: {pair['target_class']}")]
        for name in systems:
            key = (example.pair_id, name, example.modality)
            score = scores.loc[key] if key in scores.index else None
            label = name if score is None else f"{name}: SI-SDRi {score['si_sdri']:+.2f} dB, CLAP_t {score['clap_t']:.1f}"
            wave_name = f"{example.pair_id}-{name}" if name == "oracle_irm" else f"{stem}-{name}"
            players.append(_player(files=files, name=wave_name, wave=waves[name], rate=bank.sample_rate, label=label))
        figure = files / "figures" / f"{stem}.png"
        spectrogram_figure([(title, waves[key]) for key, title in
                            [("mixture", "mixture"), ("target", "target"), *[(n, n) for n in systems]]], figure)
        sections.append(
            f"<section class='example' id='{stem}'><h4>{example.pick}: {html.escape(str(pair['target_class']))} "
            f"against {html.escape(str(pair['interferer_class']))} <small>({html.escape(example.pair_id)})</small></h4>"
            + _query_block(pair=pair, modality=example.modality, bank=bank, raw_dir=raw_dir, files=files)
            + "<div class='players'>" + "".join(players) + "</div>"
            + f"<img class='spectrogram' src='{FILES}/figures/{figure.name}' alt='spectrograms of {html.escape(stem)}'>"
            + "</section>")
    page = report_dir / PAGE
    write_text_atomic(page, _document(summary, sorted(pairs["corpus"].unique()), ["mixture", *systems], sections))
    return page


def _player(files: Path, name: str, wave: np.ndarray, rate: int, label: str) -> str:
    path = files / "audio" / f"{name}.flac"
    if not path.exists():  # mixture, target and oracle are shared by a pair's modalities
        peak = float(np.max(np.abs(wave))) if wave.size else 0.0
        save_audio(path, wave / peak * 0.9 if peak > 1.0 else wave, rate, subtype="PCM_16")
    return (f"<figure><figcaption>{html.escape(label)}</figcaption>"
            f"<audio controls preload='metadata' src='{FILES}/audio/{path.name}'></audio></figure>")


def _query_block(pair: pd.Series, modality: str, bank: AudioBank, raw_dir: Path, files: Path) -> str:
    parts = []
    if modality in ("text", "omni"):
        parts.append(f"text: <q>{html.escape(str(pair['query_text']))}</q>")
    if modality in ("audio", "omni"):
        clip = str(pair["query_audio_clip"])
        parts.append(_player(files=files, name=f"query-{clip}", wave=bank.clip(clip)[: 4 * bank.sample_rate], rate=bank.sample_rate,
                             label=f"reference audio ({clip})"))
    if modality in ("image", "omni") and pair["query_image"]:
        source = raw_dir / str(pair["query_image"])
        target = files / "images" / source.name
        shutil.copyfile(source, target)
        parts.append(
            f"<img class='query' src='{FILES}/images/{target.name}' alt='query picture of {html.escape(str(pair['target_class']))}'>"
        )
    return "<div class='query'>query " + " ".join(parts) + "</div>"


def _document(summary: dict[str, Any], corpora: list[str], systems: list[str], sections: list[str]) -> str:
    modalities = sorted({key.split(".")[2] for key in summary if key.count(".") >= 3 and key.split(".")[0] in corpora},
                        key=lambda m: list(MODALITY_NAME).index(m) if m in MODALITY_NAME else 99)
    columns = [("SI-SDRi", "si_sdri", 1.0), ("SDR", "sdr", 1.0), ("CLAP_t", "clap_t", 1.0)]
    tables = "".join(
        f"<h3>{html.escape(corpus)}</h3>"
        + _html_table(markdown_table(summary=summary, corpus=corpus, systems=systems, modalities=modalities, columns=columns))
        for corpus in corpora
    )
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px}.players{display:flex;flex-wrap:wrap;gap:8px}"
             "figure{margin:0}figcaption{font-size:80%}img.spectrogram{max-width:100%;max-height:640px}img.query{height:96px}"
             ".example{border-top:1px solid #ddd;padding:8px 0}")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>marssep listening report</title>"
            f"<style>{style}</style></head><body><h1>Listening report</h1>"
            "<p>Generated by <code>dvc repro evaluate</code> (or <code>marssep report</code>) from the fixed test pairs; "
            "numbers are mean ± standard error over pairs (<code>reports/eval.md</code> has every metric). Examples per corpus "
            "and query modality: the supervised model's best, median and worst pair by SI-SDRi, and one fixed random pair. "
            "Spectrograms: mixture, target, then each system's output.</p><h2>Tables</h2>" + tables
            + "<h2>Examples</h2>" + "".join(sections) + "</body></html>\n")


def _html_table(lines: list[str]) -> str:
    """The markdown table lines ``report.markdown_table`` writes, as an HTML table."""
    cells = [[html.escape(c.strip()) for c in line.strip("|").split("|")] for line in lines if not line.startswith("|---")]
    head, body = cells[0], cells[1:]
    return ("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in body) + "</table>")


def rebuild_listening_page(pairs_path: Path, table_path: Path, metrics_path: Path, bank_dir: Path, queries_path: Path,
                           models: dict[str, Path], audio: AudioConfig, raw_dir: Path, report_dir: Path) -> Path:
    """``write_listening_page`` from the files the ``evaluate`` stage reads and writes."""
    import json

    from marssep_core.data.audio_bank import load_audio_bank
    from marssep_core.evaluation.stage import load_models

    for path in (pairs_path, table_path, metrics_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; run 'dvc repro evaluate' first")
    queries = QueryBank.load(queries_path)
    return write_listening_page(pairs=pd.read_csv(pairs_path, keep_default_na=False), table=pd.read_csv(table_path, keep_default_na=False),
                                summary=json.loads(metrics_path.read_text()), bank=load_audio_bank(bank_dir), queries=queries,
                                separators=load_models(models, queries), audio=audio, raw_dir=raw_dir, report_dir=report_dir)


def summary_text(metrics: dict[str, Any], page: Path | None = None) -> str:
    """Per corpus and query modality, the mean SI-SDRi of each separator and of the oracle: a few
    lines a person reads at a glance (``dvc metrics show`` has every number)."""
    systems = [s for s in ("supervised", "rl", "oracle_irm") if any(k.split(".")[1:2] == [s] for k in metrics)]
    corpora = sorted({k.split(".")[0] for k in metrics if k.endswith(".si_sdri") and k.count(".") == 3})
    lines = ["SI-SDRi (dB, mean over the fixed test pairs)", f"{'corpus':<12} {'query':<7} " + " ".join(f"{s:>11}" for s in systems)]
    for corpus in corpora:
        for modality in MODALITY_NAME:
            cells = [metrics.get(f"{corpus}.{system}.{modality}.si_sdri") for system in systems]
            if any(c is not None for c in cells):
                lines.append(f"{corpus:<12} {modality:<7} " + " ".join(f"{'-' if c is None else f'{c:.2f}':>11}" for c in cells))
    if page is not None:
        lines += [f"listening report: {page}", "tables: reports/eval.md; every metric: dvc metrics show"]
    return "\n".join(lines)
