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


def si_sdr_improvement(estimate: torch.Tensor, reference: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """SI-SDRi: SI-SDR of the estimate minus SI-SDR of the mixture used as the estimate."""
    return si_sdr(estimate, reference) - si_sdr(mixture, reference)


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
