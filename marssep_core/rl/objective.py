"""Advantages and the clipped trust-region surrogate, as pure functions (plus the EMA baseline).

Shapes: rewards and advantages ``(G, B)`` (G sampled masks per item); log-probabilities,
entropies and KL ``(G, B, F, T)`` or ``(B, F, T)``. Ratios, entropy and KL are per TF bin and
averaged, as GRPO does per token: a ratio of products over ~10^5 bins would overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class EmaBaseline:
    """``b <- decay b + (1 - decay) mean(r)``, started at the first batch's mean reward."""

    def __init__(self, decay: float = 0.92):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"baseline decay must be in [0, 1), got {decay}")
        self.decay, self.value = decay, None

    def update(self, rewards: torch.Tensor) -> float:
        """Fold in a batch and return the baseline to subtract from it (the value before the
        update, so a batch never sees itself)."""
        mean = float(rewards.mean())
        current = mean if self.value is None else self.value
        self.value = self.decay * current + (1.0 - self.decay) * mean
        return current


def group_advantages(rewards: torch.Tensor, baseline: float = 0.0, normalize: bool = True) -> torch.Tensor:
    """``A = r - b``, then normalised within each item's group of G samples:
    ``(A - mean_G) / (std_G + 1e-8)``. With group normalisation the baseline cancels (it shifts
    every sample of a group alike); it matters for ``G = 1`` or ``normalize=False``."""
    advantages = rewards - baseline
    if not normalize or rewards.shape[0] < 2:
        return advantages
    mean = advantages.mean(dim=0, keepdim=True)
    std = advantages.std(dim=0, unbiased=False, keepdim=True)
    return (advantages - mean) / (std + 1e-8)


@dataclass
class SurrogateTerms:
    loss: torch.Tensor  # scalar to minimise
    policy: torch.Tensor  # clipped surrogate (to maximise), scalar
    entropy: torch.Tensor  # mean per-bin entropy
    kl: torch.Tensor  # mean per-bin KL(pi || pi_old)
    clip_fraction: float
    ratio_min: float
    ratio_max: float


def clipped_surrogate(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor, clip_eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over samples and bins of ``min(rho A, clip(rho, 1 - eps, 1 + eps) A)`` with the
    per-bin ratio ``rho = exp(log pi - log pi_old)``; ``advantages (G, B)`` broadcast over bins.
    Returns the objective (to maximise) and ``rho`` (detached)."""
    ratio = torch.exp(log_prob - old_log_prob.detach())
    adv = advantages.detach().reshape(*advantages.shape, *([1] * (log_prob.ndim - advantages.ndim)))
    objective = torch.minimum(ratio * adv, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv)
    return objective.mean(), ratio.detach()


def mars_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    kl: torch.Tensor,
    clip_eps: float,
    entropy_coef: float,
    kl_coef: float,
) -> SurrogateTerms:
    """``-surrogate - lambda_H H + lambda_KL KL``, with the statistics the stage logs."""
    policy, ratio = clipped_surrogate(log_prob, old_log_prob, advantages, clip_eps)
    mean_entropy, mean_kl = entropy.mean(), kl.mean()
    loss = -policy - entropy_coef * mean_entropy + kl_coef * mean_kl
    clipped = ((ratio < 1.0 - clip_eps) | (ratio > 1.0 + clip_eps)).float().mean()
    return SurrogateTerms(
        loss=loss,
        policy=policy.detach(),
        entropy=mean_entropy.detach(),
        kl=mean_kl.detach(),
        clip_fraction=float(clipped),
        ratio_min=float(ratio.min()),
        ratio_max=float(ratio.max()),
    )
