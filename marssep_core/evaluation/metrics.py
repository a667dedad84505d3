"""One entry point for every per-example metric: ``get_metrics`` (asteroid style, flat dict).

Signal metrics: SDR/SIR/SAR (BSS Eval v3 target row, ``bss.py``), SI-SDR and SI-SDRi
(``signal.py``). Semantic metrics from an independent ``SemanticJudge`` (``judge.py``):

* ``clap_t``: 100 x cosine(judge audio embedding of the estimate, judge text embedding of the
  target's query text), the CLAPScore convention;
* ``clap_a``: 100 x cosine(estimate, the clean target reference) in the judge's audio space;
* ``leakage``: 1 when the judge's top class for the estimate is the interferer's class.

``input_*`` keys hold the same metrics for the mixture used as the estimate.
"""

from __future__ import annotations

import numpy as np
import torch

from marssep_core.audio.signal import si_sdr_np
from marssep_core.evaluation.bss import bss_eval_target
from marssep_core.evaluation.judge import SemanticJudge

SIGNAL_METRICS = ("sdr", "sir", "sar", "si_sdr", "si_sdri")
SEMANTIC_METRICS = ("clap_t", "clap_a", "leakage")
METRICS = SIGNAL_METRICS + SEMANTIC_METRICS


@torch.no_grad()
def semantic_scores(
    judge: SemanticJudge,
    estimates: np.ndarray,
    references: np.ndarray,
    texts: list[str],
    interferer_classes: list[str],
    sample_rate: int,
    reference_embeddings: torch.Tensor | None = None,
) -> dict[str, np.ndarray]:
    """``clap_t``, ``clap_a``, ``leakage`` and ``judged_class`` for ``(P, samples)`` estimates.
    ``reference_embeddings`` ``(P, D)`` skips re-embedding references scored before."""
    estimate_emb = judge.embed_audio(estimates, sample_rate)
    if reference_embeddings is None:
        reference_embeddings = judge.embed_audio(references, sample_rate)
    text_emb = judge.embed_text(texts)
    judged = (estimate_emb @ judge.class_embeddings().T).argmax(dim=1).numpy()
    judged_class = np.asarray(judge.classes, dtype=object)[judged]
    return {
        "clap_t": 100.0 * (estimate_emb * text_emb).sum(-1).double().numpy(),
        "clap_a": 100.0 * (estimate_emb * reference_embeddings).sum(-1).double().numpy(),
        "leakage": (judged_class == np.asarray(interferer_classes, dtype=object)).astype(np.float64),
        "judged_class": judged_class,
    }


def get_metrics(
    mixture: np.ndarray,
    target: np.ndarray,
    interferer: np.ndarray,
    estimate: np.ndarray,
    judge: SemanticJudge | None = None,
    query_text: str | None = None,
    interferer_class: str | None = None,
    sample_rate: int = 16000,
) -> dict[str, float | str]:
    """Every metric of one estimate ``(samples,)`` of ``target`` from ``mixture = target +
    interferer``, plus the ``input_*`` baselines. Semantic keys need ``judge``, ``query_text``
    and ``interferer_class``."""
    out: dict[str, float | str] = {}
    for prefix, candidate in (("input_", mixture), ("", estimate)):
        sdr, sir, sar = bss_eval_target(candidate, target, interferer)
        out |= {f"{prefix}sdr": sdr, f"{prefix}sir": sir, f"{prefix}sar": sar, f"{prefix}si_sdr": float(si_sdr_np(candidate, target))}
    out["si_sdri"] = float(out["si_sdr"]) - float(out["input_si_sdr"])
    if judge is not None:
        if query_text is None or interferer_class is None:
            raise ValueError("semantic metrics need query_text and interferer_class")
        for prefix, candidate in (("input_", mixture), ("", estimate)):
            scores = semantic_scores(
                judge=judge,
                estimates=candidate[None],
                references=target[None],
                texts=[query_text],
                interferer_classes=[interferer_class],
                sample_rate=sample_rate,
            )
            out |= {f"{prefix}{k}": (float(v[0]) if k != "judged_class" else str(v[0])) for k, v in scores.items()}
    return out
