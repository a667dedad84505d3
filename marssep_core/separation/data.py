"""Training mixtures made on the fly, and the fixed evaluation pairs turned into signals.

Every training item: a target class drawn uniformly (rare everyday classes count as much as the
64-clip instruments), a clip of it, an interferer clip of another class (of the same corpus by
default, as the test pairs), random crops, an SNR drawn uniformly in dB, OmniSep mixing
(``mix_pair``: ``mixture == target + interferer``) and a mixed-up query. With ``render_prob > 0``
an instrument-class source is, with that probability, a melody rendered on the fly from a training
soundfont (``FreshRenders``) instead of a crop of the bank's fixed renders. All randomness comes
from the ``rng`` passed in, so a step's batch is a function of ``(seed, step, rank)`` (with renders,
up to fluidsynth's small carry-over from one render to the next: see ``data/instruments.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from marssep_core.audio.mixing import mix_pair
from marssep_core.data.audio_bank import AudioBank
from marssep_core.data.instruments import FreshRenders
from marssep_core.data.soundfonts import read_soundfonts
from marssep_core.data.sources import GM_PROGRAMS
from marssep_core.encoders.vocabulary import OMNI_WEIGHTS, combine
from marssep_core.separation.queries import QueryBank, mixup_queries, perturb_queries, unseen_recording_noise

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MixingConfig:
    """How training mixtures and queries are drawn."""

    crop_seconds: float = 1.0
    snr_db_min: float = -5.0
    snr_db_max: float = 5.0
    same_corpus: bool = True
    query_single_prob: float = 0.5
    # augmentation of each source (the everyday classes have 3-27 recordings each): speed change
    # by resampling (pitch and tempo, as a tape) by a factor in [1 - s, 1 + s], and a random
    # first-order spectral tilt y[n] = x[n] - a x[n-1], a in [-t, t]
    speed_range: float = 0.15
    tilt_range: float = 0.5
    # random equaliser (timbre: another soundfont, microphone or room): a gain curve through
    # ``EQ_POINTS`` log-spaced frequencies, each uniform in [-eq_db, eq_db] dB, applied by FFT
    eq_db: float = 0.0
    # synthetic room on a source with probability ``reverb_prob`` (real recordings carry a room; the
    # soundfont renders are dry): direct path plus exponentially decaying noise, RT60 uniform in
    # [``REVERB_RT60_MIN``, ``reverb_rt60_max``] s, direct-to-reverberant ratio uniform in ``REVERB_DRR_DB``
    reverb_prob: float = 0.0
    reverb_rt60_max: float = 0.8
    # noise on the training query: q = normalize(q + query_noise * g), g ~ N(0, I / D), so the
    # separator does not need the exact embeddings of its few training recordings
    query_noise: float = 0.0
    # noise on the training audio queries only, in units of each corpus's calibrated level
    # (``unseen_recording_noise``: as far from the class text as unseen recordings embed); 0 = off
    audio_query_noise: float = 0.0
    # instrument sources rendered on the fly: the probability that an instrument-class source is a
    # fresh melody on a random soundfont of ``render_soundfonts`` (keys of data/soundfonts)
    render_prob: float = 0.0
    render_soundfonts: tuple[str, ...] = ("fluidr3", "csound_gm")
    render_style: str = "lively"  # melody style of the renders: lively | corpus (data/instruments.py)


EQ_POINTS = 6
REVERB_RT60_MIN = 0.15
REVERB_DRR_DB = (0.0, 12.0)


def random_equalizer(piece: np.ndarray, sample_rate: int, max_db: float, rng: np.random.Generator) -> np.ndarray:
    """``piece (N,)`` through a random smooth gain curve: ``EQ_POINTS`` gains uniform in
    [-max_db, max_db] dB at log-spaced frequencies from 50 Hz to Nyquist, interpolated in log
    frequency (flat below 50 Hz)."""
    anchors = np.geomspace(50.0, sample_rate / 2, EQ_POINTS)
    gains_db = rng.uniform(-max_db, max_db, EQ_POINTS)
    spectrum = np.fft.rfft(piece)
    frequencies = np.maximum(np.fft.rfftfreq(len(piece), 1.0 / sample_rate), anchors[0])
    gain = 10.0 ** (np.interp(np.log(frequencies), np.log(anchors), gains_db) / 20.0)
    return np.fft.irfft(spectrum * gain, n=len(piece)).astype(np.float32)


def synthetic_reverb(piece: np.ndarray, sample_rate: int, rt60_max: float, rng: np.random.Generator) -> np.ndarray:
    """``piece (N,)`` convolved with a random room response, cut back to ``N`` samples: a unit
    direct path, then Gaussian noise under an envelope falling 60 dB in RT60 seconds (uniform in
    [``REVERB_RT60_MIN``, ``rt60_max``]), scaled so the direct-to-reverberant energy ratio is
    uniform in ``REVERB_DRR_DB``."""
    rt60 = float(rng.uniform(REVERB_RT60_MIN, max(REVERB_RT60_MIN, rt60_max)))
    drr_db = float(rng.uniform(*REVERB_DRR_DB))
    times = np.arange(1, int(rt60 * sample_rate)) / sample_rate
    tail = rng.standard_normal(len(times)) * np.exp(-3.0 * np.log(10.0) * times / rt60)
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail**2))
    response = np.concatenate([[1.0], tail])
    size = 1 << (len(piece) + len(response) - 2).bit_length()  # a power of two: fast FFTs, no wrap-around
    wet = np.fft.irfft(np.fft.rfft(piece, size) * np.fft.rfft(response, size), n=size)
    return wet[: len(piece)].astype(np.float32)


@dataclass
class MixBatch:
    """``mixture``, ``target``, ``interferer`` ``(B, N)`` float32 with mixture = target + interferer;
    ``query (B, D)``; class names per row."""

    mixture: torch.Tensor
    target: torch.Tensor
    interferer: torch.Tensor
    query: torch.Tensor
    target_class: list[str]
    interferer_class: list[str]


class MixtureSampler:
    """Draws ``MixBatch``es from one split of the audio bank."""

    def __init__(self, bank: AudioBank, queries: QueryBank, split: str, cfg: MixingConfig,
                 renders: FreshRenders | None = None):
        if cfg.render_prob > 0 and renders is None:
            raise ValueError("mixing.render_prob > 0 needs the training soundfonts (FreshRenders)")
        self.bank, self.queries, self.cfg = bank, queries, cfg
        self.renders = renders if cfg.render_prob > 0 else None
        clips = bank.split(split)
        if clips.empty:
            raise ValueError(f"split {split!r} of the audio bank has no clips")
        self.length = int(round(cfg.crop_seconds * bank.sample_rate))
        self.clips_of = {label: part["clip_id"].tolist() for label, part in clips.groupby("class")}
        self.lengths = dict(zip(clips["clip_id"], clips["length"]))
        self.corpus_of = dict(zip(clips["class"], clips["corpus"]))
        self.classes = sorted(self.clips_of)
        self.partners = {
            label: [o for o in self.classes if o != label and (not cfg.same_corpus or self.corpus_of[o] == self.corpus_of[label])]
            for label in self.classes
        }
        lonely = [label for label, others in self.partners.items() if not others]
        if lonely:
            raise ValueError(f"split {split!r}: no interferer class for {lonely} (same_corpus={cfg.same_corpus})")
        self.audio_noise_of: dict[str, float] = {}
        if cfg.audio_query_noise:
            levels = unseen_recording_noise(queries, bank.index[bank.index["split"].isin([split, "val"])])
            self.audio_noise_of = {label: cfg.audio_query_noise * levels[corpus] for label, corpus in self.corpus_of.items()}
            log.info("audio-query noise per corpus: %s", {c: round(cfg.audio_query_noise * v, 3) for c, v in levels.items()})

    def _crop(self, label: str, clip_id: str, rng: np.random.Generator) -> np.ndarray:
        """A source of class ``label``: a crop of ``clip_id`` or a fresh render, augmented."""
        rendered = (self.renders is not None and label in self.renders.programs
                    and rng.random() < self.cfg.render_prob)
        factor = 1.0 + float(rng.uniform(-self.cfg.speed_range, self.cfg.speed_range)) if self.cfg.speed_range else 1.0
        span = int(np.ceil(self.length * factor)) + 1
        if rendered:
            piece = self.renders.render(label, span, rng)
        else:
            start = int(rng.integers(0, max(1, int(self.lengths[clip_id]) - span + 1)))
            piece = self.bank.crop(clip_id, span, start)
        if factor != 1.0:
            piece = np.interp(np.arange(self.length) * factor, np.arange(span), piece).astype(np.float32)
        else:
            piece = piece[: self.length]
        if self.cfg.tilt_range:
            coefficient = float(rng.uniform(-self.cfg.tilt_range, self.cfg.tilt_range))
            piece = piece - np.float32(coefficient) * np.concatenate([[np.float32(0.0)], piece[:-1]])
        if self.cfg.eq_db:
            piece = random_equalizer(piece, self.bank.sample_rate, self.cfg.eq_db, rng)
        # the draw only when reverb is on, so recipes without it keep their batches
        if self.cfg.reverb_prob and rng.random() < self.cfg.reverb_prob:
            piece = synthetic_reverb(piece, self.bank.sample_rate, self.cfg.reverb_rt60_max, rng)
        return piece

    def sample(self, batch_size: int, rng: np.random.Generator) -> MixBatch:
        mixtures, targets, interferers, target_classes, interferer_classes, query_clips = [], [], [], [], [], []
        for _ in range(batch_size):
            label = self.classes[rng.integers(len(self.classes))]
            clips = self.clips_of[label]
            clip = clips[rng.integers(len(clips))]
            others = [c for c in clips if c != clip] or clips
            other = self.partners[label][rng.integers(len(self.partners[label]))]
            other_clips = self.clips_of[other]
            snr = float(rng.uniform(self.cfg.snr_db_min, self.cfg.snr_db_max))
            mixture, target, interferer = mix_pair(
                self._crop(label, clip, rng), self._crop(other, other_clips[rng.integers(len(other_clips))], rng), snr
            )
            mixtures.append(mixture)
            targets.append(target)
            interferers.append(interferer)
            target_classes.append(label)
            interferer_classes.append(other)
            query_clips.append(others[rng.integers(len(others))])
        return MixBatch(
            mixture=torch.from_numpy(np.stack(mixtures)),
            target=torch.from_numpy(np.stack(targets)),
            interferer=torch.from_numpy(np.stack(interferers)),
            query=perturb_queries(
                mixup_queries(bank=self.queries, target_classes=target_classes, query_clips=query_clips, rng=rng,
                              single_prob=self.cfg.query_single_prob,
                              audio_noise=[self.audio_noise_of[c] for c in target_classes] if self.audio_noise_of else None),
                noise=self.cfg.query_noise, rng=rng,
            ),
            target_class=target_classes,
            interferer_class=interferer_classes,
        )


def training_sampler(bank: AudioBank, queries: QueryBank, cfg: MixingConfig, soundfonts: Path | None) -> MixtureSampler:
    """The train-split sampler of a training stage; loads the render soundfonts from the
    ``soundfonts`` folder (``data/soundfonts``) when ``cfg.render_prob > 0``."""
    renders = None
    if cfg.render_prob > 0:
        if soundfonts is None:
            raise ValueError("mixing.render_prob > 0 needs the soundfont folder (data/soundfonts)")
        classes = set(bank.split("train")["class"])
        programs = {label: program for label, program in GM_PROGRAMS.items() if label in classes}
        renders = FreshRenders(read_soundfonts(soundfonts, list(cfg.render_soundfonts)), programs, bank.sample_rate,
                               cfg.render_style)
    return MixtureSampler(bank=bank, queries=queries, split="train", cfg=cfg, renders=renders)


def pair_signals(pairs: pd.DataFrame, bank: AudioBank) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mixture, target, interferer)``, each ``(P, N)``, for fixed pairs (``test_pairs.csv``
    columns) that share one ``crop_seconds``."""
    crops = pairs["crop_seconds"].unique()
    if len(crops) != 1:
        raise ValueError(f"pairs mix crop lengths {sorted(crops)}; evaluate them separately")
    rate = bank.sample_rate
    length = int(round(float(crops[0]) * rate))
    out = []
    for pair in pairs.itertuples(index=False):
        target = bank.crop(pair.target_clip, length, int(round(pair.target_offset_s * rate)))
        interferer = bank.crop(pair.interferer_clip, length, int(round(pair.interferer_offset_s * rate)))
        out.append(mix_pair(target, interferer, float(pair.snr_db)))
    mixture, target, interferer = (np.stack(parts) for parts in zip(*out))
    return mixture, target, interferer


def pair_queries(pairs: pd.DataFrame, queries: QueryBank) -> dict[str, torch.Tensor | None]:
    """Per-pair query embeddings ``(P, D)`` for each of ``QUERY_KINDS`` (``image`` rows of pairs
    without a picture are zero), plus ``has_image (P,)``."""
    text = queries.text_of(pairs["target_class"].tolist())
    audio = queries.audio_of(pairs["query_audio_clip"].tolist())
    has_image = torch.tensor([bool(p) for p in pairs["query_image"]])
    image = torch.zeros_like(text)
    if has_image.any():
        image[has_image] = queries.image_of([p for p in pairs["query_image"] if p])
    omni_with = combine({"text": text, "audio": audio, "image": image}, OMNI_WEIGHTS)
    omni_without = combine({"text": text, "audio": audio}, OMNI_WEIGHTS)
    omni = torch.where(has_image[:, None], omni_with, omni_without)
    return {"text": text, "audio": audio, "image": image, "omni": omni, "has_image": has_image}
