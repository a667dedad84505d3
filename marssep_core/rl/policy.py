"""The factorised Beta mask policy and its closed-form log-density, entropy and KL.

Per TF bin, ``pi(m | P) = Beta(m; alpha, beta)`` with ``alpha = 1 + kappa P`` and
``beta = 1 + kappa (1 - P)``: the mode is exactly the proposal ``P``, ``kappa`` sets the
concentration (``kappa = 0`` is uniform), and ``alpha, beta >= 1`` keeps the density finite on
``[0, 1]``, so ``P`` at 0 or 1 is safe. All functions work elementwise on any shape and in float32
or wider; the caller keeps them out of bf16 autocast.
"""

from __future__ import annotations

import torch

SAMPLE_EPS = 1e-6  # masks are kept inside (eps, 1 - eps): log(0) * 0 would be NaN at alpha = 1


def beta_parameters(proposal: torch.Tensor, kappa: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha, beta)`` of the policy for a mask proposal ``P`` in [0, 1]."""
    if kappa < 0:
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    proposal = proposal.clamp(0.0, 1.0)
    return 1.0 + kappa * proposal, 1.0 + kappa * (1.0 - proposal)


def _log_beta_function(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    return torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(alpha + beta)


def beta_log_prob(mask: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``log Beta(mask; alpha, beta)``, elementwise; ``mask`` is clamped into (eps, 1 - eps)."""
    mask = mask.clamp(SAMPLE_EPS, 1.0 - SAMPLE_EPS)
    return (alpha - 1.0) * torch.log(mask) + (beta - 1.0) * torch.log1p(-mask) - _log_beta_function(alpha, beta)


def beta_entropy(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Differential entropy of ``Beta(alpha, beta)``, elementwise."""
    total = alpha + beta
    return (_log_beta_function(alpha, beta) - (alpha - 1.0) * torch.digamma(alpha) - (beta - 1.0) * torch.digamma(beta)
            + (total - 2.0) * torch.digamma(total))


def beta_kl(alpha_p: torch.Tensor, beta_p: torch.Tensor, alpha_q: torch.Tensor, beta_q: torch.Tensor) -> torch.Tensor:
    """``KL(Beta(alpha_p, beta_p) || Beta(alpha_q, beta_q))``, elementwise."""
    total_p = alpha_p + beta_p
    return (_log_beta_function(alpha_q, beta_q) - _log_beta_function(alpha_p, beta_p)
            + (alpha_p - alpha_q) * torch.digamma(alpha_p) + (beta_p - beta_q) * torch.digamma(beta_p)
            + (alpha_q - alpha_p + beta_q - beta_p) * torch.digamma(total_p))


def sample_masks(proposal: torch.Tensor, kappa: float, group_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``G`` masks per proposal in one batched call: ``(B, F, T)`` -> ``(G, B, F, T)``, values in
    (eps, 1 - eps). A Beta draw is ``X / (X + Y)`` with ``X ~ Gamma(alpha)``, ``Y ~ Gamma(beta)``;
    the gammas come from ``torch._standard_gamma`` on the proposal's device."""
    alpha, beta = beta_parameters(proposal.float(), kappa)
    shape = (group_size, *proposal.shape)
    if generator is not None:  # reproducible draws: seed the global stream from the caller's generator
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        with torch.random.fork_rng(devices=[proposal.device] if proposal.device.type == "cuda" else []):
            torch.manual_seed(seed)
            x, y = torch._standard_gamma(alpha.expand(shape).contiguous()), torch._standard_gamma(beta.expand(shape).contiguous())
    else:
        x, y = torch._standard_gamma(alpha.expand(shape).contiguous()), torch._standard_gamma(beta.expand(shape).contiguous())
    return (x / (x + y).clamp(min=1e-30)).clamp(SAMPLE_EPS, 1.0 - SAMPLE_EPS)


def pool_proposal(proposal: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """Mean proposal per ``patch = (freq bins, frames)`` block: ``(..., F, T)`` -> ``(..., F', T')``
    with ``F' = ceil(F / patch[0])`` etc. (edge blocks average the bins they hold). ``(1, 1)``
    returns ``proposal`` itself, so the per-bin policy is exactly the plain Beta policy."""
    if tuple(patch) == (1, 1):
        return proposal
    frequencies, frames = proposal.shape[-2:]
    clamped = proposal.clamp(SAMPLE_EPS, 1.0 - SAMPLE_EPS).reshape(-1, 1, frequencies, frames)
    pooled = torch.nn.functional.avg_pool2d(clamped, tuple(patch), ceil_mode=True)
    return pooled.reshape(*proposal.shape[:-2], *pooled.shape[-2:])


def sample_patch_masks(proposal: torch.Tensor, kappa: float, group_size: int, patch: tuple[int, int],
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks whose randomness is shared over ``patch = (freq bins, frames)`` blocks of bins.

    One Beta action per patch, drawn around the patch's mean proposal ``P_bar`` (``pool_proposal``)
    as ``sample_masks`` does per bin, moves every bin of the patch by the same logit offset:
    ``m = sigmoid(logit P + logit a - logit P_bar)``, so ``a = P_bar`` gives back ``P`` and the mask
    keeps the proposal's detail inside a patch. Fewer, larger actions: draws of one group differ
    audibly instead of averaging out over ~32k independent bins. The policy's log-density, entropy
    and KL are those of the actions: ``beta_*`` of ``beta_parameters(pool_proposal(P), kappa)``.
    ``(B, F, T)`` -> ``(masks (G, B, F, T), actions (G, B, F', T'))``; for ``(1, 1)`` both are
    ``sample_masks``' draws."""
    if tuple(patch) == (1, 1):
        masks = sample_masks(proposal, kappa, group_size, generator)
        return masks, masks
    frequencies, frames = proposal.shape[-2:]
    proposal = proposal.float().clamp(SAMPLE_EPS, 1.0 - SAMPLE_EPS)
    pooled = pool_proposal(proposal, patch)
    actions = sample_masks(pooled, kappa, group_size, generator)
    offset = torch.logit(actions) - torch.logit(pooled)
    offset = offset.repeat_interleave(patch[0], dim=-2).repeat_interleave(patch[1], dim=-1)[..., :frequencies, :frames]
    return torch.sigmoid(torch.logit(proposal) + offset).clamp(SAMPLE_EPS, 1.0 - SAMPLE_EPS), actions
