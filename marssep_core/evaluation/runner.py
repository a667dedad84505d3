"""Score systems x query modalities on the fixed test pairs, one table row per unit.

A unit is one (pair, system, modality). Systems: ``mixture`` (the mixture as the estimate),
each separator model given (``supervised``, ``rl``), and ``oracle_irm`` (the ceiling). Mixture
and oracle do not depend on the query; they are scored once per pair and reported under every
modality on that modality's pairs, so every comparison is paired. Image queries use the pairs
whose target class has a picture. A model whose configuration and weights equal an earlier one's
(the RL model file when RL's guard kept the start) is scored once: its rows are the earlier
model's, under its own name (``duplicate_models``).

BSS Eval dominates the cost (~0.07 s per unit at 4 s); it runs in ``workers`` forked processes
while the main process separates and runs the judge. A unit that fails (unreadable clip,
unknown query, non-finite or silent output, ...) is recorded with its error and left out of the
means; ``EvaluationError`` is raised only when the failed share exceeds ``max_error_rate``.
"""

from __future__ import annotations

import logging
import multiprocessing
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import threadpoolctl
import torch

from marssep_core.audio.signal import pair_si_sdri, si_sdr_np
from marssep_core.audio.stft import STFT
from marssep_core.config import AudioConfig
from marssep_core.data.audio_bank import AudioBank
from marssep_core.encoders.vocabulary import QUERY_KINDS
from marssep_core.evaluation.bss import BssEvalError, bss_eval_target
from marssep_core.evaluation.judge import SemanticJudge
from marssep_core.evaluation.metrics import semantic_scores
from marssep_core.separation.data import pair_queries, pair_signals
from marssep_core.separation.evaluate import oracle_irm, separate_batch
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import Separator

log = logging.getLogger(__name__)

REFERENCE_SYSTEMS = ("mixture", "oracle_irm")


class EvaluationError(RuntimeError):
    """More units failed than the error budget allows."""


@dataclass(frozen=True)
class EvaluateConfig:
    """``evaluate`` params section."""

    modalities: tuple[str, ...] = QUERY_KINDS
    batch: int = 32  # separator and judge batch
    device: str = "auto"  # separators and the trained judge: cpu | cuda | auto (CUDA when present)
    workers: int = 2  # BSS Eval processes
    max_error_rate: float = 0.02  # failed units / all units above which the stage fails
    figures_per_corpus: int = 2  # spectrogram figures (pairs at evenly spaced supervised SI-SDRi quantiles)
    clap_checkpoint: str = ""  # LAION-CLAP checkpoint: replaces the trained judge when set


@dataclass
class PairSignals:
    """``mixture``, ``target``, ``interferer`` ``(P, N)`` (zeros on failed rows), ``ok (P,)``,
    per-modality query embeddings ``(P, D)`` and ``usable[modality] (P,)``."""

    mixture: np.ndarray
    target: np.ndarray
    interferer: np.ndarray
    ok: np.ndarray
    queries: dict[str, torch.Tensor]
    usable: dict[str, np.ndarray]


def load_pair_signals(pairs: pd.DataFrame, bank: AudioBank, queries: QueryBank, modalities: tuple[str, ...],
                      errors: list[dict[str, str]]) -> PairSignals:
    """Signals and queries pair by pair; a pair that cannot be built is recorded in ``errors``."""
    length = int(round(float(pairs["crop_seconds"].iloc[0]) * bank.sample_rate))
    mixture, target, interferer = (np.zeros((len(pairs), length), np.float32) for _ in range(3))
    ok = np.zeros(len(pairs), dtype=bool)
    embedded: dict[str, torch.Tensor] = {m: torch.zeros(len(pairs), queries.dim) for m in modalities}
    usable = {m: np.zeros(len(pairs), dtype=bool) for m in modalities}
    for row in range(len(pairs)):
        pair = pairs.iloc[[row]]
        try:
            signals = pair_signals(pair, bank)
            if signals[0].shape[1] != length:
                raise ValueError(f"crop of {signals[0].shape[1]} samples, the other pairs have {length}")
            query = pair_queries(pair, queries)
        except (KeyError, ValueError, IndexError) as err:
            errors.append({"pair_id": str(pair["pair_id"].iloc[0]), "system": "*", "modality": "*", "error": f"pair: {err!r}"})
            continue
        mixture[row], target[row], interferer[row] = (s[0] for s in signals)
        ok[row] = True
        for modality in modalities:
            embedded[modality][row] = query[modality][0]
            usable[modality][row] = modality != "image" or bool(query["has_image"][0])
    return PairSignals(mixture=mixture, target=target, interferer=interferer, ok=ok, queries=embedded, usable=usable)


@dataclass
class EvaluationResult:
    """``table``: one row per unit (pair columns, system, modality, metrics, ``judged_class``,
    ``error``); ``errors``: failed pairs and units; ``waves``: ``{name: (P, N)}`` for ``target``
    and every system's text-query estimate (figures); ``target_judged``: the judge's class for
    each pair's clean target crop (``""`` where the pair failed); ``pairs_ok``: pairs built."""

    table: pd.DataFrame
    errors: pd.DataFrame
    waves: dict[str, np.ndarray]
    target_judged: np.ndarray
    pairs_ok: int


_SHARED: dict[str, np.ndarray] = {}  # target / interferer, inherited by the forked BSS workers


def _limit_threads() -> None:
    threadpoolctl.threadpool_limits(1)  # one BLAS thread per worker: the workers are the parallelism


def _bss_unit(job: tuple[int, np.ndarray]) -> tuple[float, float, float, str]:
    row, estimate = job
    try:
        return (*bss_eval_target(estimate, _SHARED["target"][row], _SHARED["interferer"][row]), "")
    except BssEvalError as err:
        return np.nan, np.nan, np.nan, f"bss_eval: {err}"


class BssPool:
    """BSS Eval of estimate rows against the shared references, in ``workers`` processes (or
    inline for ``workers <= 1``); at most ``in_flight`` blocks wait, to bound memory."""

    def __init__(self, target: np.ndarray, interferer: np.ndarray, workers: int, in_flight: int = 2):
        _SHARED["target"], _SHARED["interferer"] = target, interferer
        self.pool = multiprocessing.get_context("fork").Pool(workers, initializer=_limit_threads) if workers > 1 else None
        self.in_flight = in_flight
        self.pending: list[tuple[Any, Any]] = []
        self.done: list[tuple[Any, list[tuple[float, float, float, str]]]] = []

    def submit(self, key: Any, rows: np.ndarray, estimates: np.ndarray) -> None:
        jobs = list(zip(rows.tolist(), estimates))
        if self.pool is None:
            self.done.append((key, [_bss_unit(job) for job in jobs]))
            return
        self.pending.append((key, self.pool.map_async(_bss_unit, jobs, chunksize=4)))
        while len(self.pending) > self.in_flight:
            key, result = self.pending.pop(0)
            self.done.append((key, result.get()))

    def results(self) -> list[tuple[Any, list[tuple[float, float, float, str]]]]:
        self.done += [(key, result.get()) for key, result in self.pending]
        self.pending = []
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
        return self.done


def same_separator(a: Separator, b: Separator) -> bool:
    """Whether two separators compute the same function: equal mask-network configuration (the
    temperature included), audio settings and weights."""
    if a.mask_net.cfg != b.mask_net.cfg or a.audio != b.audio:
        return False
    state_a, state_b = a.mask_net.state_dict(), b.mask_net.state_dict()
    return state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def duplicate_models(separators: dict[str, Separator]) -> dict[str, str]:
    """``{name: earlier name}`` for each model that equals an earlier one (``same_separator``):
    what it would score is what that one scores, so the evaluation copies instead of recomputing."""
    names = list(separators)
    duplicates: dict[str, str] = {}
    for i, name in enumerate(names):
        original = next((earlier for earlier in names[:i] if earlier not in duplicates
                         and same_separator(separators[name], separators[earlier])), None)
        if original is not None:
            duplicates[name] = original
    return duplicates


def _estimates(system: str, separator: Separator | None, stft: STFT, signals: PairSignals, query: torch.Tensor | None,
               rows: np.ndarray, batch: int) -> np.ndarray:
    if system == "mixture":
        return signals.mixture[rows]
    if system == "oracle_irm":
        return oracle_irm(stft, signals.mixture[rows], signals.target[rows], signals.interferer[rows])
    return separate_batch(separator, signals.mixture[rows], query[torch.from_numpy(rows)], batch)


def evaluate_systems(
    pairs: pd.DataFrame,
    bank: AudioBank,
    queries: QueryBank,
    separators: dict[str, Separator],
    judge: SemanticJudge,
    audio: AudioConfig,
    cfg: EvaluateConfig,
) -> EvaluationResult:
    """Score every unit; see ``EvaluationResult``."""
    unknown = sorted(set(cfg.modalities) - set(QUERY_KINDS))
    if unknown or set(separators) & set(REFERENCE_SYSTEMS):
        raise ValueError(f"modalities must be among {QUERY_KINDS} (got {unknown}); systems may not be named {REFERENCE_SYSTEMS}")
    for name, separator in separators.items():
        if separator.sample_rate != bank.sample_rate:
            raise ValueError(f"system {name}: model at {separator.sample_rate} Hz, audio bank at {bank.sample_rate} Hz")
    errors: list[dict[str, str]] = []
    pairs = pairs.reset_index(drop=True)
    signals = load_pair_signals(pairs=pairs, bank=bank, queries=queries, modalities=cfg.modalities, errors=errors)
    stft = STFT.from_config(audio)  # for the oracle mask
    target_emb = judge.embed_audio(signals.target, bank.sample_rate)
    target_judged = np.asarray(judge.classes, dtype=object)[(target_emb @ judge.class_embeddings().T).argmax(dim=1).numpy()]
    texts = pairs["query_text"].tolist()
    bss = BssPool(signals.target, signals.interferer, cfg.workers)
    semantic: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    rows_of: dict[tuple[str, str], np.ndarray] = {}
    text_estimates: dict[str, np.ndarray] = {"target": signals.target}
    mixture_si_sdr = si_sdr_np(signals.mixture, signals.target)
    systems = ["mixture", *separators, "oracle_irm"]
    duplicates = duplicate_models(separators)
    for system in systems:
        if system in duplicates:
            text_estimates[system] = text_estimates[duplicates[system]]
            log.info("%s has the weights of %s: its rows are copied", system, duplicates[system])
            continue
        # the reference systems ignore the query: one block over every good pair
        blocks = ["*"] if system in REFERENCE_SYSTEMS else list(cfg.modalities)
        for modality in blocks:
            mask = signals.ok if modality == "*" else signals.ok & signals.usable[modality]
            rows = np.flatnonzero(mask)
            if rows.size == 0:
                continue
            estimate = _estimates(system=system, separator=separators.get(system), stft=stft, signals=signals,
                                  query=None if modality == "*" else signals.queries[modality], rows=rows, batch=cfg.batch)
            if modality in ("*", "text"):
                full = np.zeros_like(signals.mixture)
                full[rows] = estimate
                text_estimates[system] = full
            bss.submit((system, modality), rows, estimate)
            rows_of[(system, modality)] = rows
            semantic[(system, modality)] = semantic_scores(
                judge=judge,
                estimates=estimate,
                references=signals.target[rows],
                texts=[texts[r] for r in rows],
                interferer_classes=pairs["interferer_class"].iloc[rows].tolist(),
                sample_rate=bank.sample_rate,
                reference_embeddings=target_emb[torch.from_numpy(rows)],
            )
            semantic[(system, modality)]["si_sdr"], semantic[(system, modality)]["si_sdri"] = pair_si_sdri(
                estimate, signals.target[rows], mixture_si_sdr[rows])
            log.info("separated and judged %s / %s (%d pairs)", system, modality, rows.size)
    frames = []
    for (system, modality), scores in bss.results():
        rows = rows_of[(system, modality)]
        sdr, sir, sar, err = (np.array(col) for col in zip(*scores))
        block = pd.DataFrame({"row": rows, "system": system, "sdr": sdr, "sir": sir, "sar": sar, "error": err})
        for key in ("si_sdr", "si_sdri", "clap_t", "clap_a", "leakage", "judged_class"):
            block[key] = semantic[(system, modality)][key]
        named = [system, *(copy for copy, original in duplicates.items() if original == system)]
        for shown in ([modality] if modality != "*" else list(cfg.modalities)):
            usable = signals.usable[shown][rows]
            frames += [block[usable].assign(modality=shown, system=name) for name in named]
    table = _finish(pd.concat(frames, ignore_index=True), pairs, systems, cfg.modalities)
    for unit in table[table["error"] != ""].itertuples():
        errors.append({"pair_id": unit.pair_id, "system": unit.system, "modality": unit.modality, "error": unit.error})
    target_judged[~signals.ok] = ""
    return EvaluationResult(
        table=table,
        errors=pd.DataFrame(errors, columns=["pair_id", "system", "modality", "error"]),
        waves=text_estimates,
        target_judged=target_judged,
        pairs_ok=int(signals.ok.sum()),
    )


def _finish(table: pd.DataFrame, pairs: pd.DataFrame, systems: list[str], modalities: tuple[str, ...]) -> pd.DataFrame:
    """Attach pair columns, mark non-finite scores as errors, order rows deterministically."""
    info = pairs[["pair_id", "corpus", "target_class", "interferer_class", "snr_db"]]
    table = info.iloc[table["row"].to_numpy()].reset_index(drop=True).join(table.drop(columns="row"))
    numeric = ["sdr", "sir", "sar", "si_sdr", "si_sdri", "clap_t", "clap_a"]
    bad = (table["error"] == "") & ~np.isfinite(table[numeric].to_numpy(np.float64)).all(axis=1)
    table.loc[bad, "error"] = "non-finite score"
    table["system"] = pd.Categorical(table["system"], systems, ordered=True)
    table["modality"] = pd.Categorical(table["modality"], list(modalities), ordered=True)
    table = table.sort_values(["system", "modality", "pair_id"], kind="stable").reset_index(drop=True)
    table["system"], table["modality"] = table["system"].astype(str), table["modality"].astype(str)
    return table[["pair_id", "corpus", "system", "modality", "target_class", "interferer_class", "snr_db",
                  *numeric, "leakage", "judged_class", "error"]]
