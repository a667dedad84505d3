"""DVC stage ``train_rl``: MARS fine-tuning of the supervised separator.

Starts from ``models/separator_sup.pt``; the reward model is the frozen aligned encoder
(``rl.reward_encoder``, stage 3 by default) with the MLBP anchor (``rl.reward_mlbp``); the
independent judge of the evaluation watches for reward hacking. Runs on ``loop.train_loop``
(device, bf16 autocast for the policy, DDP, atomic checkpoints, resume). The saved weights are
the best on ``rl.select`` among the validated steps and the start: a run whose steps all score
below its start keeps the start (``kept_start`` in the metrics), and so does a run whose best step
loses more than ``rl.guard_tolerance`` of the start's ``rl.guard`` (validation text SI-SDRi by
default: a step that wins on the reward while the separation got worse is not served). Writes ``models/separator_rl.pt``,
``metrics/rl.json`` and the per-step ``metrics/rl_history.csv``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from marssep_core.config import AudioConfig
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.encoders.data import open_data
from marssep_core.encoders.store import load_encoder
from marssep_core.evaluation.judge import load_judge
from marssep_core.io_utils import md5_file, write_json_atomic, write_table_atomic
from marssep_core.rl.reward import RewardConfig, RewardModel, load_mlbp
from marssep_core.rl.task import PolicyConfig, RewardAnchors, RLTask, ValidationSet
from marssep_core.separation.data import MixingConfig, training_sampler
from marssep_core.separation.embed_queries import build_query_bank
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import load_separator, save_separator
from marssep_core.separation.stages import ValidationConfig, validation_pairs
from marssep_core.torch_utils import resolve_device
from marssep_core.training.loop import LoopConfig, clear_run, fingerprint_of, train_loop

log = logging.getLogger(__name__)

SELECTIONS = ("reward", "si_sdri_text", "judge_clap_t")
WATCH = ("reward", "judge_clap_t", "si_sdri_text")


@dataclass(frozen=True)
class RLConfig(PolicyConfig):
    """``rl`` params section: the policy knobs (``PolicyConfig``) plus reward, data and loop."""

    reward: RewardConfig = RewardConfig()
    reward_encoder: str = "models/encoder/stage3.pt"
    reward_mlbp: str = "models/encoder/mlbp.pt"
    select: str = "reward"  # validation metric that picks the saved checkpoint (the start included)
    # a selected step must keep the start's validation ``guard`` (a SELECTIONS metric; "" = no guard)
    # within ``guard_tolerance``, else the start is served
    guard: str = "si_sdri_text"
    guard_tolerance: float = 0.0
    hacking_margin: float = 0.5  # judge CLAP_t drop (points) that, with a rising reward, flags hacking
    mixing: MixingConfig = MixingConfig()
    # fine-tuning: fewer steps at a tenth of the supervised learning rate, half the batch
    loop: LoopConfig = LoopConfig(steps=400, batch_size=16, lr=2e-4, warmup=20, eval_every=50, checkpoint_every=25)
    validation: ValidationConfig = ValidationConfig()


def reward_query_bank(encoder_path: Path, queries: QueryBank, raw_dir: Path, bank_dir: Path) -> QueryBank:
    """Target-side embeddings by the reward encoder: the query bank itself when it was embedded
    by that encoder, else embedded afresh (e.g. the unaligned-encoder ablation)."""
    if queries.encoder.get("md5") == md5_file(encoder_path):
        return queries
    model, _, _ = load_encoder(encoder_path)
    log.info("reward encoder %s differs from the query bank's; embedding the anchors with it", encoder_path)
    return build_query_bank(model, open_data(raw_dir, bank_dir, model.cfg.image_size), raw_dir, encoder_path)


def hacking_watch(start: dict[str, float], end: dict[str, float], margin: float) -> dict[str, Any]:
    """Reward-encoder score vs the independent judge from the start to the selected step."""
    deltas = {k: round(end[k] - start[k], 5) for k in WATCH}
    flag = deltas["reward"] > 0 and deltas["judge_clap_t"] < -margin
    return {"delta": deltas, "diverged": bool(flag)}


def guard_check(cfg: RLConfig, start: dict[str, float], best_trained: dict[str, float]) -> dict[str, Any]:
    """Does the best trained step keep the start's ``cfg.guard`` within ``cfg.guard_tolerance``?
    ``vetoed`` when it does not (then the start is served); never with no guard."""
    if not cfg.guard:
        return {"metric": "", "vetoed": False}
    floor = start[cfg.guard] - cfg.guard_tolerance
    value = best_trained[cfg.guard]
    return {"metric": cfg.guard, "tolerance": cfg.guard_tolerance, "start": start[cfg.guard], "best_trained": value,
            "vetoed": bool(value < floor)}


def _val(row: dict[str, float]) -> dict[str, float]:
    """The validation entries of a history row, without their ``val_`` prefix."""
    return {k[4:]: v for k, v in row.items() if k.startswith("val_")}


@dataclass(frozen=True)
class RLPaths:
    """What ``train_rl`` reads and writes (field names are the script's options; the reward
    encoder and MLBP are params, ``rl.reward_encoder`` and ``rl.reward_mlbp``)."""

    raw: Path
    bank: Path
    queries: Path
    init: Path  # the supervised separator to fine-tune
    judge: Path  # the independent judge of the reward-hacking watch
    out: Path
    metrics: Path
    history: Path
    run_dir: Path
    soundfonts: Path | None = None


def run_rl_stage(cfg: RLConfig, audio: AudioConfig, paths: RLPaths) -> dict[str, Any] | None:
    """Fine-tune, select, save; metrics on rank 0, ``None`` on the other DDP ranks."""
    if cfg.select not in SELECTIONS:
        raise ValueError(f"rl.select must be one of {SELECTIONS}, got {cfg.select!r}")
    if cfg.guard not in ("", *SELECTIONS):
        raise ValueError(f"rl.guard must be empty or one of {SELECTIONS}, got {cfg.guard!r}")
    torch.manual_seed(cfg.loop.seed)
    bank = load_audio_bank(paths.bank)
    queries = QueryBank.load(paths.queries)
    separator, info = load_separator(paths.init)
    if separator.sample_rate != audio.sample_rate or separator.sample_rate != bank.sample_rate:
        raise ValueError(
            f"{paths.init}: model at {separator.sample_rate} Hz, params/audio bank at {audio.sample_rate}/{bank.sample_rate} Hz"
        )
    encoder_path = Path(cfg.reward_encoder)
    encoder, _, _ = load_encoder(encoder_path)
    reward = RewardModel(encoder, load_mlbp(cfg.reward_mlbp) if cfg.reward.fusion == "mlbp" else None, cfg.reward)
    reward.to(resolve_device(cfg.loop.device))
    judge, _ = load_judge(paths.judge)
    anchors = RewardAnchors(reward_query_bank(encoder_path, queries, paths.raw, paths.bank), bank)
    val = ValidationSet(pairs=validation_pairs(bank, paths.raw, cfg.validation), bank=bank, queries=queries,
                        reward_queries=anchors.queries, reward=reward)
    task = RLTask(
        separator=separator,
        cfg=cfg,
        steps=cfg.loop.steps,
        sampler=training_sampler(bank, queries, cfg.mixing, paths.soundfonts),
        reward=reward,
        anchors=anchors,
        val=val,
        judge=judge,
        eval_batch=cfg.validation.batch,
    )
    separator.to(resolve_device(cfg.loop.device)).eval()
    start = task.evaluate(separator.mask_net)
    start_state = {k: v.detach().cpu().clone() for k, v in separator.mask_net.state_dict().items()}
    fingerprint = fingerprint_of(cfg, audio, queries.encoder, md5_file(paths.init), md5_file(encoder_path))
    result = train_loop(
        model=separator.mask_net,
        task=task,
        cfg=cfg.loop,
        run_dir=paths.run_dir,
        fingerprint=fingerprint,
        selection_metric=cfg.select,
        history_csv=None,
        desc="rl",
    )
    if not result.dist.is_main:
        return None
    start_row = {"step": 0, **{f"val_{k}": v for k, v in start.items()}}
    history = [start_row, *result.history]
    # The start competes with the trained steps on the same metric: when no step beats it on
    # validation, fine-tuning made nothing better and the stage keeps (and serves) the start.
    beaten = result.best_score > start[cfg.select] or math.isnan(start[cfg.select])
    best_trained = next(row for row in result.history if row["step"] == result.best_step)
    guard = guard_check(cfg, start, _val(best_trained))
    kept_start = not beaten or guard["vetoed"]
    best_step = 0 if kept_start else result.best_step
    separator.mask_net.load_state_dict(start_state if kept_start else result.best_state)
    separator.cpu().eval()
    best = start_row if kept_start else best_trained
    final = next(row for row in reversed(result.history) if "val_reward" in row)
    report = {
        "steps": cfg.loop.steps,
        "selected_by": cfg.select,
        "best_step": best_step,
        "kept_start": kept_start,
        "best_trained_step": result.best_step,
        "guard": guard,
        "val_start": start,
        "val_best": _val(best),
        "val_final": _val(final),
        "improvement_at_best": {k: round(_val(best)[k] - start[k], 5) for k in start},
        "reward_hacking": hacking_watch(start, _val(best), cfg.hacking_margin),
        "reward_hacking_final": hacking_watch(start, _val(final), cfg.hacking_margin),
        "processes": result.dist.world_size,
        "replicas_identical": len(set(result.replica_digests)) == 1,
    }
    # the class texts its text queries trained on: serving can look typed text up among them
    save_separator(paths.out, separator, info["encoder"], {"stage": "train_rl", "step": best_step, "init": str(paths.init),
                                                           "selected_by": cfg.select, "val": _val(best),
                                                           "vocabulary": list(queries.texts)})
    write_table_atomic(paths.history, pd.DataFrame(history))
    write_json_atomic(paths.metrics, report)
    clear_run(paths.run_dir)
    return report
