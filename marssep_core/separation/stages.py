"""Separator DVC stages as functions: ``embed_queries`` and ``train_supervised``.

``train_supervised`` trains the mask network with the weighted BCE on on-the-fly mixtures and
mixed-up queries (``loop.train_loop``), keeps the checkpoint with the best validation SI-SDRi for
text queries, picks the mask temperature on the validation pairs (``calibrate_temperature``:
text and audio queries),
then scores it on the fixed test pairs for text, audio, image and omni queries next
to the oracle IRM, and writes ``models/separator_sup.pt``, ``metrics/supervised.json`` and the
per-step history CSV.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from marssep_core.audio.stft import STFT
from marssep_core.config import AudioConfig, TestPairsConfig
from marssep_core.data.audio_bank import AudioBank, load_audio_bank
from marssep_core.data.cross_source import open_cross_source
from marssep_core.data.test_pairs import make_test_pairs
from marssep_core.io_utils import write_json_atomic, write_table_atomic
from marssep_core.separation.data import MixBatch, MixingConfig, MixtureSampler, training_sampler
from marssep_core.separation.evaluate import corpus_means, evaluate_pairs
from marssep_core.separation.losses import LOSSES, negative_si_sdr, weighted_bce
from marssep_core.separation.model import MaskNet, MaskNetConfig, build_mask_net
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import Separator, save_separator
from marssep_core.training.loop import LoopConfig, clear_run, fingerprint_of, train_loop

log = logging.getLogger(__name__)

MEMBER_BATCHES = ("shared", "split")
# what calibrate_temperature maximises on the validation pairs: the text queries' SI-SDRi, or the
# mean of the text and audio queries' (one temperature serves every query kind)
TEMPERATURE_SELECTIONS = ("text", "text_audio")


@dataclass(frozen=True)
class UNetParams:
    """The ``model`` block of ``train_supervised`` (``MaskNetConfig`` minus what the STFT and the
    encoder fix)."""

    warp_bins: int = 128
    # "mel": no warped bins under one linear bin apart (MaskNetConfig); text +0.43 dB test, +0.67 cross-source
    warp_scale: str = "mel"
    downs: int = 5
    channels: int = 16
    mask_channels: int = 32
    film: bool = True
    input_skip: bool = False
    active_norm: bool = False
    members: int = 2  # > 1: an ensemble of independently initialised U-Nets, logits averaged (MaskEnsemble)


@dataclass(frozen=True)
class ValidationConfig:
    """Validation pairs drawn from the val split like the test pairs (selection: text SI-SDRi)."""

    pairs_per_corpus: int = 50
    crop_seconds: float = 4.0
    seed: int = 4321
    batch: int = 32


@dataclass(frozen=True)
class SupervisedConfig:
    """``train_supervised`` params section."""

    model: UNetParams = UNetParams()
    # BCE + SI-SDR: +1.3 dB test text over the BCE alone (docs/separator.md); "bce", "ratio_bce", "si_sdr"
    loss: str = "bce_si_sdr"
    si_sdr_weight: float = 0.02  # "bce_si_sdr": weight of the SI-SDR (dB) term; 0.02 makes both gradients alike in size
    # speed 0.3: resampling by up to +-30 % (RL keeps 0.15): test text +0.45 and +0.51 dB, unseen
    # recordings +0.13 and +0.12 on two seeds (docs/separator.md, "Wider speed augmentation")
    mixing: MixingConfig = MixingConfig(speed_range=0.3)
    # 3000 steps: twice the old 1500 paid +0.6 dB test text on the grown corpus; the weight average
    # (0.999): cross-source text +0.16 to +0.30 dB over three runs; checkpoints kept from half the
    # steps on: a step-750 peak on the 100 validation pairs cost a run 0.82 dB of test text; batches
    # of 48: test instruments +0.11 and +0.19 dB on two seeds, unseen recordings +0.03 and +0.10, for
    # 1.45x the stage's time (docs/separator.md)
    loop: LoopConfig = LoopConfig(steps=3000, batch_size=48, ema_decay=0.999, select_from_fraction=0.5)
    validation: ValidationConfig = ValidationConfig()
    # mask temperatures tried on the validation pairs after training; the best by
    # ``temperature_selection`` is kept in the model file (``MaskNetConfig.temperature``). (1.0,)
    # keeps the trained mask as it is.
    mask_temperatures: tuple[float, ...] = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.75, 2.0)
    # "text_audio": the mean of the text and audio validation SI-SDRi; "text": the text alone
    # (text alone chose a mask so sure that the everyday audio queries lost 1 dB: docs/separator.md)
    temperature_selection: str = "text_audio"
    # with model.members > 1: "shared" gives every member the whole batch (members x the step's cost);
    # "split" gives member i the i-th of members equal shares of it (different mixtures per member,
    # about one network's cost); docs/separator.md
    member_batches: str = "shared"

    def __post_init__(self):
        if not self.mask_temperatures or min(self.mask_temperatures) <= 0:
            raise ValueError(f"train_supervised.mask_temperatures must be positive numbers, got {list(self.mask_temperatures)}")
        if self.temperature_selection not in TEMPERATURE_SELECTIONS:
            raise ValueError(f"train_supervised.temperature_selection must be one of {TEMPERATURE_SELECTIONS}, "
                             f"got {self.temperature_selection!r}")
        if self.member_batches not in MEMBER_BATCHES:
            raise ValueError(f"train_supervised.member_batches must be one of {MEMBER_BATCHES}, got {self.member_batches!r}")
        if self.member_batches == "split" and self.loop.batch_size % self.model.members:
            raise ValueError(f"train_supervised.member_batches=split: loop.batch_size {self.loop.batch_size} "
                             f"does not split among model.members={self.model.members}")


def validation_pairs(bank: AudioBank, raw_dir: Path, cfg: ValidationConfig) -> pd.DataFrame:
    """Fixed pairs from the val split (the test pairs' recipe, its crop-over-sound defaults)."""
    clips = bank.index.assign(duration=bank.index["length"] / bank.sample_rate)
    classes = pd.read_csv(raw_dir / "classes.csv", keep_default_na=False)
    images = pd.read_csv(raw_dir / "images.csv", keep_default_na=False)
    pairs_cfg = TestPairsConfig(pairs_per_corpus=cfg.pairs_per_corpus, crop_seconds=cfg.crop_seconds, seed=cfg.seed)
    return make_test_pairs(clips, classes, images, pairs_cfg, audio=bank.clip_audio, split="val")


class SupervisedTask:
    """Loss steps on sampled mixtures; validation SI-SDRi for text and audio queries."""

    def __init__(self, loss: str, stft: STFT, audio: AudioConfig, sampler: MixtureSampler, val_pairs: pd.DataFrame,
                 bank: AudioBank, queries: QueryBank, eval_batch: int, si_sdr_weight: float = 0.0,
                 member_batches: str = "shared"):
        if loss not in LOSSES:
            raise ValueError(f"train_supervised.loss must be one of {LOSSES}, got {loss!r}")
        self.loss_name, self.si_sdr_weight, self.stft, self.audio, self.sampler = loss, si_sdr_weight, stft, audio, sampler
        self.split_members = member_batches == "split"
        self.val_pairs, self.bank, self.queries, self.eval_batch = val_pairs, bank, queries, eval_batch

    def loss(
        self, model: nn.Module, rng: np.random.Generator, batch_size: int, device: torch.device
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return self.loss_on(model, self.draw(rng, batch_size), device)

    def draw(self, rng: np.random.Generator, batch_size: int) -> MixBatch:
        """The step's mixtures (CPU; what ``data_workers`` processes draw ahead)."""
        return self.sampler.sample(batch_size, rng)

    def loss_on(self, model: nn.Module, batch: MixBatch, device: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of each member of ``model`` on ``batch`` (``per_member`` logits), averaged: an
        ensemble's members learn apart, on the same mixtures or (``split_members``) each on its
        share of them."""
        mixture, target = batch.mixture.to(device), batch.target.to(device)
        with torch.autocast(device.type, enabled=False):  # STFTs in float32
            spec = self.stft.forward(mixture)
            magnitude = spec.abs()
            target_magnitude = self.stft.forward(target).abs()
        member_logits = model(magnitude, batch.query.to(device), per_member=True, split_batch=self.split_members)
        members = len(member_logits)

        def share(values: torch.Tensor) -> tuple[torch.Tensor, ...]:
            """Each member's rows of ``values``: its share of the batch, or all of it."""
            return values.chunk(members) if self.split_members else (values,) * members

        losses, parts = [], []
        for logits, member_spec, member_magnitude, member_target_magnitude, member_target in zip(
                member_logits, share(spec), share(magnitude), share(target_magnitude), share(target)):
            loss, logged = self.member_loss(logits=logits, spec=member_spec, magnitude=member_magnitude,
                                            target_magnitude=member_target_magnitude, target=member_target)
            losses.append(loss)
            parts.append(logged)
        logged = {key: float(np.mean([p[key] for p in parts])) for key in parts[0]}
        return sum(losses) / len(losses), logged

    def member_loss(self, logits: torch.Tensor, spec: torch.Tensor, magnitude: torch.Tensor, target_magnitude: torch.Tensor,
                    target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """``self.loss_name`` of mask logits ``(B, F, T)`` for the mixture ``spec`` (complex,
        ``(B, F, T)``) and its target (magnitude ``(B, F, T)``, waveform ``(B, N)``)."""
        if self.loss_name in ("bce", "ratio_bce"):
            return weighted_bce(logits, target_magnitude, magnitude, ratio_target=self.loss_name == "ratio_bce"), {}
        with torch.autocast(logits.device.type, enabled=False):
            estimate = self.stft.inverse(torch.sigmoid(logits.float()) * spec, target.shape[-1])
            waveform_loss = negative_si_sdr(estimate, target)
            if self.loss_name == "si_sdr":
                return waveform_loss, {}
            bce = weighted_bce(logits, target_magnitude, magnitude)
            return bce + self.si_sdr_weight * waveform_loss, {"bce": bce.item(), "neg_si_sdr": waveform_loss.item()}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        separator = Separator(model, self.audio)
        summary, _ = evaluate_pairs(
            separator=separator,
            pairs=self.val_pairs,
            bank=self.bank,
            queries=self.queries,
            kinds=("text", "audio"),
            oracle=False,
            batch=self.eval_batch,
        )
        return {f"si_sdri_{kind}": values["si_sdri"] for kind, values in summary.items()}


def select_temperature(scores: dict[float, dict[str, float]], selection: str) -> float:
    """The temperature of ``scores`` (``{T: {"si_sdri_text": ..., "si_sdri_audio": ...}}``) with the
    best ``selection`` score: the text SI-SDRi, or the mean of the text and audio ones (the first on a tie)."""
    kinds = ("text",) if selection == "text" else ("text", "audio")
    return max(scores, key=lambda t: float(np.mean([scores[t][f"si_sdri_{kind}"] for kind in kinds])))


def calibrate_temperature(mask_net: MaskNet, task: SupervisedTask, temperatures: tuple[float, ...],
                          selection: str = "text_audio") -> dict[str, Any]:
    """Set ``mask_net``'s temperature to the one of ``temperatures`` with the best validation
    score (``select_temperature``); returns it with each temperature's text and audio SI-SDRi."""
    scores = {}
    for temperature in temperatures:
        mask_net.cfg = dataclasses.replace(mask_net.cfg, temperature=float(temperature))
        scores[float(temperature)] = task.evaluate(mask_net)
    best = select_temperature(scores, selection)
    mask_net.cfg = dataclasses.replace(mask_net.cfg, temperature=best)
    log.info("mask temperature %.2f by %s (validation SI-SDRi by temperature: %s)", best, selection, scores)
    return {"temperature": best, "selection": selection,
            **{f"val_si_sdri_{kind}": {str(t): v[f"si_sdri_{kind}"] for t, v in scores.items()} for kind in ("text", "audio")}}


def build_separator(cfg: UNetParams, audio: AudioConfig, query_dim: int) -> Separator:
    stft = STFT.from_config(audio)
    return Separator(build_mask_net(MaskNetConfig(n_freq=stft.n_freq, query_dim=query_dim, **dataclasses.asdict(cfg))), audio)


@dataclass(frozen=True)
class SupervisedPaths:
    """What ``train_supervised`` reads and writes (field names are the script's options)."""

    raw: Path  # the corpus: classes.csv for the validation pairs
    bank: Path  # audio bank
    queries: Path  # query bank
    pairs: Path  # the fixed test pairs (test_pairs.csv)
    out: Path  # the separator model file
    metrics: Path
    history: Path
    run_dir: Path  # resume checkpoints
    soundfonts: Path | None = None  # training soundfonts, read when mixing.render_prob > 0
    cross_source: Path | None = None  # the cross-source set (data/cross_source), scored next to the test pairs


def run_supervised_stage(cfg: SupervisedConfig, audio: AudioConfig, paths: SupervisedPaths,
                         pairs_cfg: TestPairsConfig = TestPairsConfig()) -> dict[str, Any] | None:
    """Train (resuming from ``paths.run_dir`` after a crash), select, score on the test pairs (and
    on ``pairs_cfg`` pairs of the cross-source set when ``paths.cross_source`` is given) and save.
    Returns the metrics on rank 0 and ``None`` on the other DDP ranks."""
    torch.manual_seed(cfg.loop.seed)
    bank = load_audio_bank(paths.bank)
    if bank.sample_rate != audio.sample_rate:
        raise ValueError(f"{paths.bank}: audio bank is at {bank.sample_rate} Hz, params audio.sample_rate is {audio.sample_rate}")
    queries = QueryBank.load(paths.queries)
    separator = build_separator(cfg.model, audio, queries.dim)
    task = SupervisedTask(
        loss=cfg.loss,
        si_sdr_weight=cfg.si_sdr_weight,
        stft=separator.stft,
        audio=audio,
        sampler=training_sampler(bank, queries, cfg.mixing, paths.soundfonts),
        val_pairs=validation_pairs(bank, paths.raw, cfg.validation),
        bank=bank,
        queries=queries,
        eval_batch=cfg.validation.batch,
        member_batches=cfg.member_batches,
    )
    fingerprint = fingerprint_of(cfg, audio, queries.encoder)
    result = train_loop(
        model=separator.mask_net,
        task=task,
        cfg=cfg.loop,
        run_dir=paths.run_dir,
        fingerprint=fingerprint,
        selection_metric="si_sdri_text",
        history_csv=paths.history,
        desc="supervised",
    )
    if not result.dist.is_main:
        return None
    separator.mask_net.load_state_dict(result.best_state)
    separator.cpu().eval()
    calibration = calibrate_temperature(mask_net=separator.mask_net, task=task, temperatures=tuple(cfg.mask_temperatures),
                                        selection=cfg.temperature_selection)
    test_pairs = pd.read_csv(paths.pairs, keep_default_na=False)
    summary, table = evaluate_pairs(separator, test_pairs, bank, queries, batch=cfg.validation.batch)
    best_row = next(row for row in result.history if row["step"] == result.best_step)
    report = {
        "best_step": result.best_step,
        "steps": cfg.loop.steps,
        "val": {k[4:]: v for k, v in best_row.items() if k.startswith("val_")},
        "calibration": calibration,
        "test": summary,
        "test_by_corpus": corpus_means(table),
        "text_vs_oracle": round(summary["text"]["si_sdri"] / summary["oracle_irm"]["si_sdri"], 3),
        "parameters": sum(p.numel() for p in separator.parameters()),
        "processes": result.dist.world_size,
        "replicas_identical": len(set(result.replica_digests)) == 1,
    }
    if paths.cross_source is not None:
        cross, cross_pairs = open_cross_source(directory=paths.cross_source, raw_dir=paths.raw, corpus_clips=bank.index,
                                               sample_rate=audio.sample_rate, cfg=pairs_cfg)
        cross_summary, cross_table = evaluate_pairs(separator, cross_pairs, cross, queries, batch=cfg.validation.batch)
        report["cross_source"] = {"test": cross_summary, "by_corpus": corpus_means(cross_table)}
    save_separator(paths.out, separator, queries.encoder, {"stage": "train_supervised", "step": result.best_step,
                                                           "val_si_sdri_text": result.best_score})
    write_table_atomic(paths.history, pd.DataFrame(result.history))
    write_json_atomic(paths.metrics, report)
    clear_run(paths.run_dir)
    return report
