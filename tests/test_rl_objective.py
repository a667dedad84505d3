"""The Beta policy's closed forms, the clipped surrogate, advantages, and a toy policy-gradient run."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Beta, kl_divergence

from marssep_core.rl.objective import EmaBaseline, clipped_surrogate, group_advantages, mars_loss
from marssep_core.rl.policy import (
    SAMPLE_EPS,
    beta_entropy,
    beta_kl,
    beta_log_prob,
    beta_parameters,
    pool_proposal,
    sample_masks,
    sample_patch_masks,
)

PROPOSALS = torch.tensor([0.0, 1e-4, 0.1, 0.5, 0.9, 1.0 - 1e-4, 1.0], dtype=torch.float64)


@pytest.mark.parametrize("kappa", [0.0, 0.5, 9.0, 100.0])
def test_beta_closed_forms_match_torch_distributions(kappa):
    alpha, beta = beta_parameters(PROPOSALS, kappa)
    reference = Beta(alpha, beta)
    masks = torch.tensor([0.01, 0.2, 0.5, 0.7, 0.99, 0.3, 0.6], dtype=torch.float64)
    torch.testing.assert_close(beta_log_prob(masks, alpha, beta), reference.log_prob(masks))
    torch.testing.assert_close(beta_entropy(alpha, beta), reference.entropy())
    other_alpha, other_beta = beta_parameters(PROPOSALS.flip(0), kappa + 1.0)
    torch.testing.assert_close(beta_kl(alpha, beta, other_alpha, other_beta), kl_divergence(reference, Beta(other_alpha, other_beta)))
    assert torch.all(beta_kl(alpha, beta, alpha, beta).abs() < 1e-9)


def test_proposals_and_masks_at_the_edges_give_finite_values():
    for kappa in (0.0, 9.0, 1000.0):
        alpha, beta = beta_parameters(torch.tensor([0.0, 1.0, -0.5, 1.5]), kappa)  # out-of-range P is clamped
        assert torch.all(alpha >= 1) and torch.all(beta >= 1)
        for mask in (torch.zeros(4), torch.ones(4), torch.full((4,), 0.5)):
            values = [beta_log_prob(mask, alpha, beta), beta_entropy(alpha, beta), beta_kl(alpha, beta, beta, alpha)]
            assert all(torch.isfinite(v).all() for v in values), kappa
    alpha, beta = beta_parameters(torch.rand(3), 0.0)
    assert torch.allclose(beta_log_prob(torch.rand(3), alpha, beta), torch.zeros(3))  # kappa 0: uniform
    assert torch.allclose(beta_entropy(alpha, beta), torch.zeros(3), atol=1e-6)
    with pytest.raises(ValueError, match="kappa"):
        beta_parameters(torch.rand(3), -1.0)


def test_sampled_masks_are_batched_bounded_reproducible_and_centred_on_the_mean():
    proposal = torch.tensor([[[0.0, 0.2, 0.5, 0.8, 1.0]]])  # (B=1, F=1, T=5)
    first = sample_masks(proposal, 9.0, 4000, torch.Generator().manual_seed(3))
    again = sample_masks(proposal, 9.0, 4000, torch.Generator().manual_seed(3))
    assert first.shape == (4000, 1, 1, 5) and torch.equal(first, again)
    assert first.min() >= SAMPLE_EPS and first.max() <= 1 - SAMPLE_EPS
    expected = (1 + 9.0 * proposal) / (2 + 9.0)  # mean of Beta(1 + kP, 1 + k(1 - P))
    torch.testing.assert_close(first.mean(0), expected, atol=0.01, rtol=0)


def test_clipping_zeroes_the_gradient_outside_the_trust_region():
    old = torch.zeros(2, 1, 3)
    advantages = torch.tensor([[1.0], [-1.0]])  # (G=2, B=1)
    for shift, expect_zero in ((0.5, (True, False)), (-0.5, (False, True)), (0.05, (False, False))):
        # shift > 0: ratio e^0.5 > 1.2 -> a positive advantage is clipped, a negative one is not
        log_prob = torch.full((2, 1, 3), shift, requires_grad=True)
        objective, ratio = clipped_surrogate(log_prob, old, advantages, clip_eps=0.2)
        objective.backward()
        for group, zero in enumerate(expect_zero):
            assert (log_prob.grad[group].abs().sum() == 0) == zero, (shift, group)
        assert torch.allclose(ratio, torch.exp(torch.tensor(shift)))


def test_mars_loss_combines_terms_and_reports_clip_statistics():
    log_prob = torch.tensor([[[0.0, 1.0]], [[0.0, -1.0]]])
    terms = mars_loss(
        log_prob=log_prob,
        old_log_prob=torch.zeros_like(log_prob),
        advantages=torch.tensor([[1.0], [1.0]]),
        entropy=torch.full((1, 2), 2.0),
        kl=torch.full((1, 2), 3.0),
        clip_eps=0.2,
        entropy_coef=0.1,
        kl_coef=0.01,
    )
    surrogate = (1.0 + 1.2 + 1.0 + torch.exp(torch.tensor(-1.0))) / 4
    assert float(terms.policy) == pytest.approx(float(surrogate))
    assert float(terms.loss) == pytest.approx(float(-surrogate - 0.1 * 2.0 + 0.01 * 3.0))
    assert terms.clip_fraction == 0.5 and terms.ratio_max == pytest.approx(2.71828, rel=1e-4)


def test_group_normalisation_and_the_ema_baseline():
    rewards = torch.tensor([[1.0, 10.0], [2.0, 10.0], [3.0, 13.0]])  # (G=3, B=2)
    adv = group_advantages(rewards, baseline=5.0)
    torch.testing.assert_close(adv.mean(0), torch.zeros(2))
    torch.testing.assert_close(adv.std(0, unbiased=False), torch.ones(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(adv, group_advantages(rewards, baseline=-7.0))  # the baseline cancels in a group
    torch.testing.assert_close(group_advantages(rewards[:1], baseline=5.0), rewards[:1] - 5.0)  # G = 1: baseline only
    flat = group_advantages(torch.ones(4, 3), 0.0)
    assert torch.all(flat == 0)  # equal rewards: no signal, no NaN
    ema = EmaBaseline(0.92)
    assert ema.update(torch.tensor([1.0])) == 1.0  # first batch: its own mean
    assert ema.update(torch.tensor([2.0])) == pytest.approx(1.0)
    assert ema.value == pytest.approx(0.92 + 0.08 * 2.0)


@pytest.mark.parametrize("patch", [(1, 1), (2, 3)])
def test_one_policy_gradient_run_on_a_toy_problem_raises_the_expected_reward(patch):
    """Learn a (4 x 6) mask whose best value is known (constant per patch): the reward is minus the
    mean distance of a sampled mask to the target mask; the deterministic proposal must move towards
    it. With patches, the pooled log-probabilities carry the gradient back to every bin of a patch."""
    torch.manual_seed(0)
    best = (torch.rand(1, 4 // patch[0], 6 // patch[1]) > 0.5).float()
    best = best.repeat_interleave(patch[0], dim=-2).repeat_interleave(patch[1], dim=-1)  # (1, 4, 6)
    logits = torch.zeros(1, 4, 6, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.1)
    generator = torch.Generator().manual_seed(0)

    def expected_reward() -> float:
        return float(-(torch.sigmoid(logits.detach()) - best).abs().mean())

    before = expected_reward()
    for _ in range(60):
        with torch.no_grad():
            old = torch.sigmoid(logits)
        masks, actions = sample_patch_masks(proposal=old, kappa=9.0, group_size=8, patch=patch, generator=generator)
        advantages = group_advantages(-(masks - best).abs().mean(dim=(2, 3)))
        alpha, beta = beta_parameters(pool_proposal(torch.sigmoid(logits), patch), 9.0)
        old_alpha, old_beta = beta_parameters(pool_proposal(old, patch), 9.0)
        terms = mars_loss(
            log_prob=beta_log_prob(actions, alpha[None], beta[None]),
            old_log_prob=beta_log_prob(actions, old_alpha[None], old_beta[None]),
            advantages=advantages,
            entropy=beta_entropy(alpha, beta),
            kl=beta_kl(alpha, beta, old_alpha, old_beta),
            clip_eps=0.2,
            entropy_coef=0.0,
            kl_coef=0.01,
        )
        optimizer.zero_grad()
        terms.loss.backward()
        optimizer.step()
    assert expected_reward() > before + 0.2  # from 0.5 mean distance to well under 0.3


def _block_means(proposal: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """Reference pooling by explicit slicing (edge blocks average the bins they hold)."""
    frequencies, frames = proposal.shape[-2:]
    rows = []
    for f in range(0, frequencies, patch[0]):
        rows.append(torch.stack([proposal[..., f : f + patch[0], t : t + patch[1]].mean(dim=(-2, -1))
                                 for t in range(0, frames, patch[1])], dim=-1))
    return torch.stack(rows, dim=-2)


def test_patch_1x1_is_the_per_bin_policy_exactly():
    proposal = torch.rand(2, 6, 5, generator=torch.Generator().manual_seed(0))
    proposal[0, 0, 0], proposal[1, 2, 3] = 0.0, 1.0  # the edges, which the patch path would clamp
    assert pool_proposal(proposal, (1, 1)) is proposal
    masks, actions = sample_patch_masks(proposal=proposal, kappa=9.0, group_size=3, patch=(1, 1), generator=torch.Generator().manual_seed(5))
    assert masks is actions and torch.equal(masks, sample_masks(proposal, 9.0, 3, torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("patch", [(2, 3), (4, 4), (5, 7)])
def test_patch_policy_log_prob_entropy_and_kl_match_torch_distributions(patch):
    generator = torch.Generator().manual_seed(1)
    proposal = torch.rand(2, 5, 7, generator=generator, dtype=torch.float64)
    other = torch.rand(2, 5, 7, generator=generator, dtype=torch.float64)
    pooled = pool_proposal(proposal, patch)
    torch.testing.assert_close(pooled, _block_means(proposal, patch))
    _, actions = sample_patch_masks(proposal=proposal, kappa=9.0, group_size=4, patch=patch, generator=generator)
    actions = actions.double()  # drawn in float32
    assert actions.shape == (4, 2, -(-5 // patch[0]), -(-7 // patch[1]))
    alpha, beta = beta_parameters(pooled, 9.0)
    other_alpha, other_beta = beta_parameters(pool_proposal(other, patch), 9.0)
    reference = Beta(1 + 9.0 * _block_means(proposal, patch), 1 + 9.0 * (1 - _block_means(proposal, patch)))
    torch.testing.assert_close(beta_log_prob(actions, alpha[None], beta[None]), reference.log_prob(actions))
    torch.testing.assert_close(beta_entropy(alpha, beta), reference.entropy())
    torch.testing.assert_close(beta_kl(alpha, beta, other_alpha, other_beta), kl_divergence(reference, Beta(other_alpha, other_beta)))
