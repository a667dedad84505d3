"""DVC stage ``evaluate``: every system on the fixed test pairs, versioned numbers and a report.

Writes ``metrics/eval.json`` (flat ``<corpus>.<system>.<modality>.<metric>`` keys with ``_sem``
twins, judge accuracy, error counts, paired differences against the supervised model),
``metrics/eval_pairs.csv`` (one row per unit), ``metrics/eval_errors.csv``, quantile curves of
SI-SDRi and CLAP_t for ``dvc plots``, ``reports/eval.md``, spectrogram PNGs and the listening page
``reports/eval.html`` (``listening.py``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from marssep_core.config import AudioConfig, TestPairsConfig
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.data.cross_source import open_cross_source
from marssep_core.evaluation.aggregate import distribution, paired_difference, summarize
from marssep_core.evaluation.clap import LaionClapJudge
from marssep_core.evaluation.figures import spectrogram_figure
from marssep_core.evaluation.judge import SemanticJudge, load_judge
from marssep_core.evaluation.listening import write_listening_page
from marssep_core.evaluation.report import render_report
from marssep_core.evaluation.runner import EvaluateConfig, EvaluationError, EvaluationResult, duplicate_models, evaluate_systems
from marssep_core.io_utils import write_json_atomic, write_table_atomic, write_text_atomic
from marssep_core.separation.evaluate import corpus_means, evaluate_pairs
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import Separator, load_separator
from marssep_core.torch_utils import resolve_device

log = logging.getLogger(__name__)


def open_judge(cfg: EvaluateConfig, judge_path: Path, judge_metrics: Path | None) -> tuple[SemanticJudge, dict[str, Any]]:
    """The trained judge, or LAION-CLAP over the same class texts when ``clap_checkpoint`` is set;
    with a description and its clean-clip accuracy for the report."""
    trained, meta = load_judge(judge_path)
    trained.net.to(resolve_device(cfg.device))
    trained.batch = cfg.batch
    clip_accuracy = json.loads(judge_metrics.read_text())["test"] if judge_metrics and judge_metrics.is_file() else {}
    if cfg.clap_checkpoint:
        judge = LaionClapJudge(cfg.clap_checkpoint, trained.classes, trained.texts)
        return judge, {"name": judge.name, "description": f"LAION-CLAP from `{cfg.clap_checkpoint}`; classes by the"
                       " nearest class text.", "test_clips": {}, "chance": 1 / len(trained.classes)}
    return trained, {
        "name": trained.name,
        "description": "a CNN over 64-band log-mel frames with a cosine classifier, trained by `train_judge` on the"
        f" clean+ train split with its own seed ({meta.get('seed')}) and cross-entropy only. It shares no weights,"
        " features or losses with the reward encoder (a transformer over 128-band fbank patches). Its class"
        " prototypes serve as the text embeddings of the class texts.",
        "test_clips": clip_accuracy, "chance": 1 / len(trained.classes),
    }


def load_models(models: dict[str, Path], queries: QueryBank, device: str = "cpu") -> dict[str, Separator]:
    """Separator models by name, on ``device``; refuses one trained with another encoder than the
    query bank's."""
    separators = {}
    for name, path in models.items():
        separator, info = load_separator(path)
        expected, actual = info["encoder"].get("md5"), queries.encoder.get("md5")
        if expected and actual and expected != actual:
            raise ValueError(f"{path}: trained with encoder md5 {expected}, but the query bank was embedded with {actual}")
        separators[name] = separator.to(resolve_device(device))
    return separators


def _figure_pairs(table: pd.DataFrame, system: str, per_corpus: int) -> list[str]:
    """Pair ids at evenly spaced quantiles of ``system``'s text-query SI-SDRi, per corpus."""
    chosen = []
    rows = table[(table["system"] == system) & (table["modality"] == "text") & (table["error"] == "")]
    for _, part in rows.groupby("corpus", sort=True):
        ordered = part.sort_values(["si_sdri", "pair_id"])["pair_id"].tolist()
        for k in range(min(per_corpus, len(ordered))):
            chosen.append(ordered[int((k + 1) * len(ordered) / (per_corpus + 1))])
    return chosen


def _error_budget(result: EvaluationResult, pairs: int, systems: int, modalities: int, budget: float) -> dict[str, Any]:
    lost = (pairs - result.pairs_ok) * systems * modalities
    failed = int((result.table["error"] != "").sum()) + lost
    units = len(result.table) + lost
    return {"failed": failed, "units": units, "rate": round(failed / max(1, units), 6), "budget": budget}


@dataclass(frozen=True)
class EvaluatePaths:
    """What ``evaluate`` reads and writes besides the separators (field names are the script's options)."""

    pairs: Path  # the fixed test pairs
    bank: Path
    queries: Path
    judge: Path
    judge_metrics: Path | None  # the judge's own metrics, copied into the report
    out: Path  # folder of eval.json and the tables
    report: Path  # folder of eval.md, figures/ and eval.html
    raw: Path  # the corpus: query pictures for eval.html
    cross_source: Path | None = None  # the cross-source set (data/cross_source): SI-SDRi of every model on its pairs


def cross_source_scores(separators: dict[str, Separator], directory: Path, bank_index: pd.DataFrame, raw: Path,
                        queries: QueryBank, audio: AudioConfig, pairs_cfg: TestPairsConfig, batch: int) -> dict[str, float]:
    """SI-SDRi of each model (and the oracle IRM) on the cross-source set's pairs, as flat
    ``cross_source.<corpus|all>.<system>.<modality>.si_sdri`` metrics (with ``_sem`` on ``all``);
    a model equal to an earlier one (``duplicate_models``) is scored once."""
    cross, pairs = open_cross_source(directory=directory, raw_dir=raw, corpus_clips=bank_index, sample_rate=audio.sample_rate,
                                     cfg=pairs_cfg)
    out: dict[str, float] = {}
    duplicates = duplicate_models(separators)
    scored: dict[str, tuple[dict[str, dict[str, float]], pd.DataFrame]] = {}
    for name, separator in separators.items():
        if name in duplicates:
            summary, table = scored[duplicates[name]]
        else:
            summary, table = scored[name] = evaluate_pairs(separator, pairs, cross, queries, batch=batch)
        for kind, values in summary.items():
            system, modality = ("oracle_irm", "text") if kind == "oracle_irm" else (name, kind)
            out[f"cross_source.all.{system}.{modality}.si_sdri"] = values["si_sdri"]
            out[f"cross_source.all.{system}.{modality}.si_sdri_sem"] = values["si_sdri_se"]
        for corpus, by_kind in corpus_means(table).items():
            for kind, value in by_kind.items():
                system, modality = ("oracle_irm", "text") if kind == "oracle_irm" else (name, kind)
                out[f"cross_source.{corpus}.{system}.{modality}.si_sdri"] = value
    return out


def run_evaluate_stage(cfg: EvaluateConfig, audio: AudioConfig, paths: EvaluatePaths, models: dict[str, Path],
                       pairs_cfg: TestPairsConfig = TestPairsConfig()) -> dict[str, Any]:
    """Run the evaluation and write every output; raises ``EvaluationError`` (after writing the
    tables) when more units failed than ``cfg.max_error_rate`` allows. With
    ``paths.cross_source``, also every model on the cross-source set's ``pairs_cfg`` pairs."""
    started = time.monotonic()
    pairs = pd.read_csv(paths.pairs, keep_default_na=False)
    bank = load_audio_bank(paths.bank)
    queries = QueryBank.load(paths.queries)
    judge, judge_info = open_judge(cfg, paths.judge, paths.judge_metrics)
    separators = load_models(models, queries, cfg.device)
    result = evaluate_systems(pairs=pairs, bank=bank, queries=queries, separators=separators, judge=judge, audio=audio, cfg=cfg)
    systems = ["mixture", *separators, "oracle_irm"]
    errors = _error_budget(result=result, pairs=len(pairs), systems=len(systems), modalities=len(cfg.modalities), budget=cfg.max_error_rate)
    corpora = sorted(pairs["corpus"].unique())
    built = result.target_judged != ""
    hit = pd.Series(result.target_judged[built] == pairs["target_class"].to_numpy()[built], index=pairs["corpus"][built])
    judge_info["target_crops"] = {str(c): float(v) for c, v in hit.groupby(level=0).mean().items()}
    summary = summarize(result.table)
    paired = {f"{name}_minus_supervised.{metric}": paired_difference(result.table, name, "supervised", metric)
              for name in separators if name != "supervised" for metric in ("sdr", "si_sdri", "clap_t")}
    metrics: dict[str, Any] = dict(summary)
    metrics |= {f"judge.{corpus}.target_crop_accuracy": round(v, 4) for corpus, v in judge_info["target_crops"].items()}
    metrics |= {f"errors.{k}": v for k, v in errors.items() if k != "budget"}
    metrics |= {f"paired.{name}.{modality}.{k}": v for name, by in paired.items() for modality, d in by.items() for k, v in d.items()}
    if paths.cross_source is not None:
        metrics |= cross_source_scores(separators=separators, directory=paths.cross_source, bank_index=bank.index, raw=paths.raw,
                                       queries=queries, audio=audio, pairs_cfg=pairs_cfg, batch=cfg.batch)
    write_table_atomic(paths.out / "eval_pairs.csv", result.table)
    write_table_atomic(paths.out / "eval_errors.csv", result.errors)
    write_table_atomic(paths.out / "eval_cdf_si_sdri.csv", distribution(result.table, "si_sdri"))
    write_table_atomic(paths.out / "eval_cdf_clap_t.csv", distribution(result.table, "clap_t"))
    figures = []
    model_for_figures = "supervised" if "supervised" in separators else next(iter(separators), None)
    if model_for_figures and cfg.figures_per_corpus > 0:
        index = {pid: i for i, pid in enumerate(pairs["pair_id"])}
        for pair_id in _figure_pairs(result.table, model_for_figures, cfg.figures_per_corpus):
            row = index[pair_id]
            pair = pairs.iloc[row]
            panels = [(f"mixture ({pair_id}: {pair['target_class']} + {pair['interferer_class']}, {pair['snr_db']:+.1f} dB)",
                       result.waves["mixture"][row]), (f"target ({pair['target_class']})", result.waves["target"][row])]
            panels += [(f"{name}, text query \"{pair['query_text']}\"", result.waves[name][row]) for name in separators]
            panels.append(("oracle IRM", result.waves["oracle_irm"][row]))
            spectrogram_figure(panels, paths.report / "figures" / f"{pair_id}.png")
            figures.append(pair_id)
    report = render_report(
        summary=summary,
        corpora=corpora,
        systems=systems,
        modalities=list(cfg.modalities),
        judge=judge_info,
        errors=errors,
        paired=paired,
        figures=figures,
        cross_source={k: v for k, v in metrics.items() if k.startswith("cross_source.")},
    )
    write_text_atomic(paths.report / "eval.md", report)
    write_listening_page(
        pairs=pairs,
        table=result.table,
        summary=summary,
        bank=bank,
        queries=queries,
        separators=separators,
        audio=audio,
        raw_dir=paths.raw,
        report_dir=paths.report,
    )
    write_json_atomic(paths.out / "eval.json", metrics)
    log.info("evaluated %d units (%d failed) in %.0f s", errors["units"], errors["failed"], time.monotonic() - started)
    if errors["rate"] > cfg.max_error_rate:
        raise EvaluationError(f"{errors['failed']} of {errors['units']} evaluation units failed ({100 * errors['rate']:.2f} %), "
                              f"over the budget of {100 * cfg.max_error_rate:.2f} %; see {paths.out / 'eval_errors.csv'}")
    return metrics
