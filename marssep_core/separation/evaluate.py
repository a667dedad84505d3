"""SI-SDRi of a separator on fixed pairs, per query modality, next to the oracle IRM.

Pairs are ``test_pairs.csv``-style rows (or the validation pairs the supervised stage draws the
same way). Shapes: signals ``(P, N)`` float32 numpy, queries ``(P, D)`` torch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from marssep_core.audio.signal import ideal_ratio_mask, mean_and_stderr, pair_si_sdri, si_sdr_np
from marssep_core.audio.stft import STFT
from marssep_core.data.audio_bank import AudioBank
from marssep_core.encoders.vocabulary import QUERY_KINDS
from marssep_core.separation.data import pair_queries, pair_signals
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import Separator


@torch.no_grad()
def separate_batch(separator: Separator, mixture: np.ndarray, query: torch.Tensor, batch: int = 32) -> np.ndarray:
    """Estimates ``(P, N)`` for mixtures ``(P, N)`` and queries ``(P, D)``, ``batch`` at a time."""
    device = next(separator.parameters()).device
    out = []
    for i in range(0, mixture.shape[0], batch):
        piece = torch.from_numpy(mixture[i : i + batch]).to(device)
        out.append(separator(piece, query[i : i + batch].to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros_like(mixture)


def oracle_irm(stft: STFT, mixture: np.ndarray, target: np.ndarray, interferer: np.ndarray) -> np.ndarray:
    """The ideal-ratio-mask estimate ``(P, N)``: ``|S| / (|S| + |N|)`` on the mixture, mixture phase."""
    mix = torch.from_numpy(mixture)
    magnitude, phase = stft.magnitude_phase(mix)
    mask = ideal_ratio_mask(stft.forward(torch.from_numpy(target)).abs(), stft.forward(torch.from_numpy(interferer)).abs())
    return stft.from_magnitude_phase(mask * magnitude, phase, mixture.shape[-1]).numpy()


def evaluate_pairs(
    separator: Separator,
    pairs: pd.DataFrame,
    bank: AudioBank,
    queries: QueryBank,
    kinds: tuple[str, ...] = QUERY_KINDS,
    oracle: bool = True,
    batch: int = 32,
) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """Summary ``{kind: {si_sdri, si_sdri_se, si_sdr, n}}`` (plus ``oracle_irm``) and a per-pair
    table with one ``si_sdri_<kind>`` column per query kind. Image queries use only the pairs
    whose class has a picture."""
    separator.eval()
    mixture, target, interferer = pair_signals(pairs, bank)
    embedded = pair_queries(pairs, queries)
    table = pairs[["pair_id", "corpus", "target_class", "interferer_class", "snr_db"]].copy()
    table["mixture_si_sdr"] = mixture_si_sdr = si_sdr_np(mixture, target)
    summary: dict[str, dict[str, float]] = {}
    for kind in [*kinds, "oracle_irm"] if oracle else kinds:
        rows = embedded["has_image"].numpy() if kind == "image" else np.ones(len(pairs), dtype=bool)
        if kind == "oracle_irm":
            estimate = oracle_irm(separator.stft, mixture, target, interferer)
        else:
            estimate = np.zeros_like(mixture)
            if rows.any():
                estimate[rows] = separate_batch(separator, mixture[rows], embedded[kind][torch.from_numpy(rows)], batch)
        sdr, sdri = pair_si_sdri(estimate, target, mixture_si_sdr)
        sdr[~rows], sdri[~rows] = np.nan, np.nan
        table[f"si_sdri_{kind}"] = sdri
        mean, stderr = mean_and_stderr(sdri[rows])
        summary[kind] = {"si_sdri": round(mean, 3), "si_sdri_se": round(stderr, 3),
                         "si_sdr": round(float(np.mean(sdr[rows])) if rows.any() else float("nan"), 3), "n": int(rows.sum())}
    return summary, table


def corpus_means(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``{corpus: {kind: mean SI-SDRi}}`` of an ``evaluate_pairs`` table."""
    columns = [c for c in table.columns if c.startswith("si_sdri_")]
    by_corpus = table.groupby("corpus")[columns].mean().round(3)
    return {str(corpus): {c[len("si_sdri_"):]: float(v) for c, v in row.items()} for corpus, row in by_corpus.iterrows()}
