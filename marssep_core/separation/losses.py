"""Supervised separator losses as pure functions.

- ``weighted_bce`` (OmniSep/CLIPSep, the paper's baseline): binary cross-entropy between the mask
  logits and the binary target mask ``|S_target| > 0.5 |X|``, each TF bin weighted by
  ``clamp(log1p(|X|), 1e-3, 10)`` so loud bins count more and silent ones almost nothing.
  ``ratio_bce`` is the same against the ratio mask ``clamp(|S_target| / |X|, 0, 1)`` (Sound of
  Pixels' other target): bins where both sources sound get a partial target instead of all or
  nothing.
- ``negative_si_sdr``: minus the SI-SDR of the masked-mixture estimate (iSTFT with the mixture
  phase) against the target, clipped to ``[-max_db, max_db]``: above so solved items stop
  dominating, below so a silent target (about -80 dB whatever the mask; 0.85 % of everyday
  training crops) does not outweigh its whole batch.
- ``bce_si_sdr`` (the default): the weighted BCE plus ``si_sdr_weight`` times the negative SI-SDR
  (dB), the BCE's per-bin targets with the SI-SDR's waveform objective; on the grown corpus it
  beats either alone on text, image and omni queries (docs/separator.md has the runs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from marssep_core.audio.signal import si_sdr

LOSSES = ("bce", "ratio_bce", "si_sdr", "bce_si_sdr")


def binary_target_mask(target_magnitude: torch.Tensor, mixture_magnitude: torch.Tensor) -> torch.Tensor:
    """``1`` where the target dominates: ``|S| > 0.5 |X|``, ``(..., F, T)`` float."""
    return (target_magnitude > 0.5 * mixture_magnitude).float()


def ratio_target_mask(target_magnitude: torch.Tensor, mixture_magnitude: torch.Tensor) -> torch.Tensor:
    """``|S| / |X|`` clipped to ``[0, 1]`` (``|S|`` can exceed ``|X|`` where the sources cancel), ``(..., F, T)``."""
    return (target_magnitude / mixture_magnitude.clamp_min(1e-8)).clamp(0.0, 1.0)


def mask_weights(mixture_magnitude: torch.Tensor) -> torch.Tensor:
    return torch.log1p(mixture_magnitude).clamp(1e-3, 10.0)


def weighted_bce(
    logits: torch.Tensor, target_magnitude: torch.Tensor, mixture_magnitude: torch.Tensor, ratio_target: bool = False
) -> torch.Tensor:
    """Scalar loss; all inputs ``(B, F, T)``, ``logits`` before the sigmoid; the binary target
    mask, or the ratio mask with ``ratio_target``."""
    make_target = ratio_target_mask if ratio_target else binary_target_mask
    return F.binary_cross_entropy_with_logits(
        logits.float(), make_target(target_magnitude, mixture_magnitude), weight=mask_weights(mixture_magnitude)
    )


def negative_si_sdr(estimate: torch.Tensor, target: torch.Tensor, max_db: float = 30.0) -> torch.Tensor:
    """Scalar loss from waveforms ``(B, N)``: ``-mean(clip(SI-SDR, -max_db, max_db))``."""
    return -si_sdr(estimate.float(), target.float()).clamp(min=-max_db, max=max_db).mean()
