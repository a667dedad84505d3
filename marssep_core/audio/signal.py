"""Signal-level metrics and oracle masks, as pure functions.

Shapes: waveforms ``(..., samples)``; magnitudes ``(..., freq, frames)``. SI-SDR follows Le Roux
et al. (2019): the reference is rescaled by the optimal gain before the error is measured; both
signals are made zero-mean first.
"""

from __future__ import annotations

import numpy as np
import torch

_EPS = 1e-8


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Scale-invariant SDR in dB, ``(...)``. A silent reference gives a very negative score."""
    estimate = estimate - estimate.mean(dim=-1, keepdim=True)
    reference = reference - reference.mean(dim=-1, keepdim=True)
    gain = (estimate * reference).sum(-1, keepdim=True) / (reference.square().sum(-1, keepdim=True) + _EPS)
    target = gain * reference
    noise = estimate - target
    return 10.0 * torch.log10((target.square().sum(-1) + _EPS) / (noise.square().sum(-1) + _EPS))


def si_sdr_np(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """SI-SDR in dB of ``(..., samples)`` numpy signals, computed in float64."""
    return si_sdr(torch.from_numpy(np.asarray(estimate, np.float64)), torch.from_numpy(np.asarray(reference, np.float64))).numpy()


def pair_si_sdri(estimate: np.ndarray, target: np.ndarray, mixture_si_sdr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SI-SDR and SI-SDRi ``(P,)`` in dB of estimates ``(P, N)`` of fixed pairs' targets ``(P, N)``:
    the one place the supervised stage, RL validation and the evaluation score pairs.
    ``mixture_si_sdr`` ``(P,)`` is ``si_sdr_np(mixture, target)``, computed once per pair set."""
    score = si_sdr_np(estimate, target)
    return score, score - mixture_si_sdr


def ideal_ratio_mask(target_magnitude: torch.Tensor, interferer_magnitude: torch.Tensor) -> torch.Tensor:
    """The oracle IRM ``|S| / (|S| + |N|)`` in [0, 1] (0.5 where both are silent)."""
    total = target_magnitude + interferer_magnitude
    return torch.where(total > _EPS, target_magnitude / total.clamp(min=_EPS), torch.full_like(total, 0.5))


def mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
    """Mean and its standard error (0 for fewer than two values)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    stderr = float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0
    return float(values.mean()), stderr
