"""Does the reward track separation? Measured on validation pairs before anything optimises it.

For each validation pair (text query), the policy of a separator (its mask proposal ``P`` as the
mean of a Beta with concentration ``kappa``) draws ``G`` masks, as one RL group does. Each
reconstruction gets the RL reward, its SI-SDR to the target and the independent judge's CLAP_t.
Per corpus:

- ``spearman_reward_si_sdr`` / ``spearman_reward_clap_t``: the rank correlation within each group
  (what group-relative advantages use), mean and standard error over the pairs
  (``spearman_clap_t_si_sdr``: the judge against SI-SDR, for scale);
- ``within_group_si_sdr_std_db``: how far the ``G`` draws of one group differ in SI-SDR at all
  (per-bin Beta noise over ~32k bins averages out; a reward cannot rank draws that do not differ);
- ``target_over_mixture`` / ``target_over_interferer``: how often the reward scores the clean
  target above the mixture and above the interferer (a reward that cannot tell them apart gives
  RL no direction), and the mean margins;
- ``proposal_over_mixture``: the same for the separator's own estimate (the mean mask).
- ``spearman_gap_*``: the same ranks for the similarity gap ``cos(y, z*) - cos(y, interferer text)``
  (``rl.reward.weights`` semantic 1, leakage 1), a semantic reward that also penalises what is
  left of the other source.
Each figure of a group is given per patch shape (``rl_probe.patches``): ``1x1`` is the per-bin
policy of the paper; larger patches share one action over a block of bins
(``policy.sample_patch_masks``). Per patch shape too, ``gradient_by_patch``: how much signal one policy
gradient estimate carries. On ``rl_probe.gradient_batches`` training batches (the RL stage's
sampler, batch size and group size), two rollouts of the same batch with independent draws give
two gradient estimates ``g1, g2`` of the RL loss; their cosine estimates
``|g|^2 / (|g|^2 + noise)``, so ``snr = cos / (1 - cos)`` (0: pure noise).
Shapes: waveforms ``(P, S)``; groups ``(G, P, S)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from marssep_core.audio.signal import si_sdr
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.encoders.store import load_encoder
from marssep_core.evaluation.judge import SemanticJudge, load_judge
from marssep_core.evaluation.metrics import semantic_scores
from marssep_core.io_utils import write_json_atomic
from marssep_core.rl.policy import sample_patch_masks
from marssep_core.rl.reward import RewardModel, load_mlbp
from marssep_core.rl.stage import RLConfig, reward_query_bank
from marssep_core.rl.task import RewardAnchors, RLTask, ValidationSet
from marssep_core.separation.data import training_sampler
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import Separator, load_separator
from marssep_core.separation.stages import validation_pairs


@dataclass(frozen=True)
class ProbeConfig:
    """``rl_probe`` params: group size and seed of the draws (kappa and the reward are ``rl``'s)."""

    group_size: int = 8
    seed: int = 0
    # (freq bins, frames) sharing one action; [1, 1] is the per-bin policy RL trains today
    patches: tuple[tuple[int, int], ...] = ((1, 1), (8, 8), (32, 32), (128, 64))
    gradient_batches: int = 8  # training batches per patch shape for the gradient agreement


def _mean_sem(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    sem = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    return {"mean": round(float(values.mean()), 4), "sem": round(sem, 4), "n": int(len(values))}


def _within_group_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of columns: ``a``, ``b`` ``(G, P)`` -> ``(P,)`` (NaN for a constant column)."""
    out = np.full(a.shape[1], np.nan)
    for p in range(a.shape[1]):
        if np.ptp(a[:, p]) > 0 and np.ptp(b[:, p]) > 0:
            out[p] = spearmanr(a[:, p], b[:, p]).statistic
    return out


@torch.no_grad()
def probe_reward(separator: Separator, val: ValidationSet, pairs: pd.DataFrame, reward: RewardModel, judge: SemanticJudge,
                 kappa: float, cfg: ProbeConfig) -> dict[str, Any]:
    """The probe's figures per patch shape and corpus (see the module docstring), on the CPU."""
    generator = torch.Generator().manual_seed(cfg.seed)
    mixture, target = torch.from_numpy(val.mixture), torch.from_numpy(val.target)
    magnitude, phase = separator.spectrogram(mixture)
    proposal = separator.mask_net.mask(magnitude, val.queries["text"]).float()
    estimate = separator.reconstruct(proposal[None], magnitude, phase, mixture.shape[-1])[0]
    single = reward(torch.stack([target, mixture, mixture - target, estimate]), val.anchors, target, val.interferer_text)[0].numpy()
    by_patch = {}
    for patch in cfg.patches:
        masks = sample_patch_masks(
            proposal=proposal, kappa=kappa, group_size=cfg.group_size, patch=(int(patch[0]), int(patch[1])), generator=generator
        )[0]
        groups = separator.reconstruct(masks, magnitude, phase, mixture.shape[-1])  # (G, P, S)
        by_patch[f"{patch[0]}x{patch[1]}"] = _group_figures(
            groups=groups, single=single, val=val, pairs=pairs, reward=reward, judge=judge, sample_rate=separator.sample_rate
        )
    return {"group_size": cfg.group_size, "kappa": kappa, "seed": cfg.seed, "by_patch": by_patch}


def _group_figures(groups: torch.Tensor, single: np.ndarray, val: ValidationSet, pairs: pd.DataFrame, reward: RewardModel,
                   judge: SemanticJudge, sample_rate: int) -> dict[str, Any]:
    """Per corpus: ranks within groups ``(G, P, S)``, and the reward of ``single`` = (target,
    mixture, interferer, estimate) ``(4, P)`` rewards."""
    target = torch.from_numpy(val.target)
    count = groups.shape[0]
    group_rewards, parts = reward(groups, val.anchors, target, val.interferer_text)
    group_rewards, group_gap = group_rewards.numpy(), (parts["semantic"] + parts["leakage"]).numpy()
    group_si_sdr = si_sdr(groups, target[None].expand_as(groups)).numpy()
    judged = semantic_scores(
        judge=judge,
        estimates=groups.reshape(count * len(pairs), -1).numpy(),
        references=np.tile(val.target, (count, 1)),
        texts=val.texts * count,
        interferer_classes=val.interferer_classes * count,
        sample_rate=sample_rate,
    )
    group_clap = judged["clap_t"].reshape(count, len(pairs))
    by_corpus: dict[str, Any] = {}
    for corpus, rows in pairs.reset_index(drop=True).groupby("corpus").groups.items():
        rows = np.asarray(rows)
        r, s, c, gap = group_rewards[:, rows], group_si_sdr[:, rows], group_clap[:, rows], group_gap[:, rows]
        target_r, mixture_r, interferer_r, estimate_r = (single[k, rows] for k in range(4))
        by_corpus[str(corpus)] = {
            "pairs": int(len(rows)),
            "spearman_reward_si_sdr": _mean_sem(_within_group_spearman(r, s)),
            "spearman_reward_clap_t": _mean_sem(_within_group_spearman(r, c)),
            "spearman_clap_t_si_sdr": _mean_sem(_within_group_spearman(c, s)),
            "spearman_gap_si_sdr": _mean_sem(_within_group_spearman(gap, s)),
            "spearman_gap_clap_t": _mean_sem(_within_group_spearman(gap, c)),
            "within_group_si_sdr_std_db": _mean_sem(s.std(axis=0)),
            "within_group_reward_std": _mean_sem(r.std(axis=0)),
            "group_mean_si_sdr_db": _mean_sem(s.mean(axis=0)),
            "target_over_mixture": round(float((target_r > mixture_r).mean()), 4),
            "target_over_interferer": round(float((target_r > interferer_r).mean()), 4),
            "proposal_over_mixture": round(float((estimate_r > mixture_r).mean()), 4),
            "margin_target_minus_mixture": _mean_sem(target_r - mixture_r),
            "margin_target_minus_interferer": _mean_sem(target_r - interferer_r),
        }
    return by_corpus


def gradient_agreement(task: RLTask, batches: int, batch_size: int, seed: int) -> dict[str, Any]:
    """Cosine between two policy-gradient estimates of one batch from independent draws (see the
    module docstring), over ``batches`` batches of the task's sampler; the model in train mode as
    in the RL stage, on the CPU, in float32."""
    model, device = task.separator.mask_net.train(), torch.device("cpu")
    params = [p for p in model.parameters() if p.requires_grad]
    rng = np.random.default_rng(seed)
    cosines, norms = [], []
    for _ in range(batches):
        batch = task.sampler.sample(batch_size, rng)
        anchor_rows = task.anchors.sample(batch.target_class, rng)
        estimates = []
        for _draw in range(2):
            generator = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
            rollout = task.draw(model=model, batch=batch, anchor_rows=anchor_rows, generator=generator, device=device)
            loss, _ = task.update_loss(model, rollout, device)
            estimates.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
        cosines.append(float(torch.nn.functional.cosine_similarity(estimates[0], estimates[1], dim=0)))
        norms.append(float(estimates[0].norm()))
    model.eval()
    cos = float(np.mean(cosines))
    return {"cosine": _mean_sem(np.asarray(cosines)), "snr": round(cos / (1.0 - cos), 4) if cos < 1 else float("inf"),
            "grad_norm": _mean_sem(np.asarray(norms)), "batches": batches, "batch_size": batch_size,
            "actions_per_item": int(rollout.actions[0, 0].numel())}


def run_probe_stage(cfg: ProbeConfig, rl: RLConfig, raw_dir: Path, bank_dir: Path, queries_path: Path, model: Path,
                    judge_path: Path, out_metrics: Path) -> dict[str, Any]:
    """The probe on ``model``'s policy with the RL stage's reward (``rl`` params) -> ``out_metrics``."""
    torch.manual_seed(cfg.seed)
    bank = load_audio_bank(bank_dir)
    queries = QueryBank.load(queries_path)
    separator, _ = load_separator(model)
    encoder_path = Path(rl.reward_encoder)
    encoder, _, _ = load_encoder(encoder_path)
    reward = RewardModel(encoder, load_mlbp(rl.reward_mlbp) if rl.reward.fusion == "mlbp" else None, rl.reward)
    judge, _ = load_judge(judge_path)
    pairs = validation_pairs(bank, raw_dir, rl.validation)
    val_queries = reward_query_bank(encoder_path, queries, raw_dir, bank_dir)
    val = ValidationSet(pairs=pairs, bank=bank, queries=queries, reward_queries=val_queries, reward=reward)
    report = {"model": str(model), "reward_encoder": str(encoder_path), "fusion": rl.reward.fusion,
              **probe_reward(separator=separator.eval(), val=val, pairs=pairs, reward=reward, judge=judge, kappa=rl.kappa, cfg=cfg)}
    # gradients on training mixtures as the RL stage draws them (bank clips only: no soundfont renders)
    sampler = training_sampler(bank, queries, replace(rl.mixing, render_prob=0.0), None)
    anchors = RewardAnchors(val_queries, bank)
    report["gradient_by_patch"] = {}
    for patch in cfg.patches:
        policy = replace(rl, patch=(int(patch[0]), int(patch[1])))
        task = RLTask(separator=separator, cfg=policy, steps=rl.loop.steps, sampler=sampler, reward=reward, anchors=anchors, val=val,
                      judge=judge, eval_batch=rl.validation.batch)
        report["gradient_by_patch"][f"{patch[0]}x{patch[1]}"] = gradient_agreement(
            task=task, batches=cfg.gradient_batches, batch_size=rl.loop.batch_size, seed=cfg.seed
        )
    write_json_atomic(out_metrics, report)
    return report
