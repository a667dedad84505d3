"""Multimodal rewards from a frozen encoder: ``r = w_sem cos(phi_audio(y_hat), z*) + ...``.

``z*`` is the reward anchor of the target side: the fusion (``mlbp`` by default; ``mean``,
``audio``, ``text`` for ablations) of the encoder's embeddings of the target class text, a
reference clip of the target class and, where the class has one, its picture. Further terms:
``si_sdr`` (SI-SDR of ``y_hat`` to the training target, in units of 10 dB; weight 3 by default,
0 in the paper) and ``leakage`` (minus the cosine to the interferer's class text; 0 by default). Everything here runs in float32 without
gradients. Shapes: waveforms ``(..., samples)``, embeddings ``(..., D)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from marssep_core.audio.signal import si_sdr
from marssep_core.encoders.fusion import FUSION_KINDS, MLBPFusion, fuse
from marssep_core.encoders.imagebind import ImageBindModel
from marssep_core.encoders.preprocess import AudioPreprocessConfig, clip_starts, kaldi_fbank
from marssep_core.torch_utils import read_payload


@dataclass(frozen=True)
class RewardWeights:
    semantic: float = 1.0
    si_sdr: float = 3.0  # the paper's reward is semantic only (0); alone it does not rank draws here (docs/rl.md)
    leakage: float = 0.0


@dataclass(frozen=True)
class RewardConfig:
    """``rl.reward``: the anchor fusion and the weights of the reward terms."""

    fusion: str = "mlbp"
    weights: RewardWeights = RewardWeights()


def batched_audio_input(waves: torch.Tensor, cfg: AudioPreprocessConfig) -> torch.Tensor:
    """The encoder's audio input for a batch: ``(N, S)`` -> ``(N, clips, 1, mel, frames)``.

    Matches ``audio_to_model_input`` row by row, except that inputs no longer than one clip give
    one clip instead of ``cfg.clips`` identical ones (same embedding, a third of the work)."""
    clip_len = int(round(cfg.clip_seconds * cfg.sample_rate))
    starts = [0.0] if waves.shape[-1] <= clip_len else clip_starts(waves.shape[-1] / cfg.sample_rate, cfg.clip_seconds, cfg.clips)
    clips = []
    for start in starts:
        begin = int(round(start * cfg.sample_rate))
        piece = waves[:, begin : begin + clip_len]
        piece = piece - piece.mean(dim=-1, keepdim=True)
        fbank = kaldi_fbank(piece, cfg).transpose(1, 2)  # (N, mel, frames)
        missing = cfg.target_frames - fbank.shape[-1]
        fbank = F.pad(fbank, (0, missing)) if missing > 0 else fbank[..., : cfg.target_frames]
        clips.append((fbank - cfg.mean) / cfg.std)
    return torch.stack(clips, dim=1).unsqueeze(2)


class RewardModel:
    """Frozen encoder (+ MLBP) scoring reconstructed waveforms against target-side anchors."""

    def __init__(self, encoder: ImageBindModel, mlbp: MLBPFusion | None, cfg: RewardConfig, batch: int = 64):
        if cfg.fusion not in FUSION_KINDS:
            raise ValueError(f"rl.reward.fusion must be one of {FUSION_KINDS}, got {cfg.fusion!r}")
        if cfg.fusion == "mlbp" and mlbp is None:
            raise ValueError("rl.reward.fusion mlbp needs the trained MLBP module (models/encoder/mlbp.pt)")
        self.encoder = encoder.eval().requires_grad_(False)
        self.mlbp = mlbp.eval().requires_grad_(False) if mlbp is not None else None
        self.cfg, self.batch = cfg, batch
        self.audio_cfg = AudioPreprocessConfig(mel_bins=encoder.cfg.mel_bins, target_frames=encoder.cfg.audio_frames)

    def to(self, device: torch.device) -> RewardModel:
        self.encoder.to(device)
        if self.mlbp is not None:
            self.mlbp.to(device)
        return self

    @torch.no_grad()
    def embed_waves(self, waves: torch.Tensor) -> torch.Tensor:
        """Unit-norm audio embeddings ``(N, D)`` of ``(N, S)`` waveforms at 16 kHz."""
        with torch.autocast(waves.device.type, enabled=False):
            out = [self.encoder.embed("audio", batched_audio_input(waves[i : i + self.batch].float(), self.audio_cfg))
                   for i in range(0, waves.shape[0], self.batch)]
        return F.normalize(torch.cat(out), dim=-1)

    @torch.no_grad()
    def anchors(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor, has_vision: torch.Tensor) -> torch.Tensor:
        """``z* (B, D)`` on the reward model's device from target-side embeddings ``(B, D)`` (any
        device); rows with ``has_vision`` False are fused without the picture."""
        device = next(self.encoder.parameters()).device
        text, audio, vision, has_vision = (t.to(device) for t in (text, audio, vision, has_vision))
        with torch.autocast(text.device.type, enabled=False):
            without = fuse(self.cfg.fusion, {"audio": audio, "text": text, "vision": None}, self.mlbp)
            if not bool(has_vision.any()):
                return without
            with_picture = fuse(self.cfg.fusion, {"audio": audio, "text": text, "vision": vision}, self.mlbp)
            return torch.where(has_vision[:, None], with_picture, without)

    @torch.no_grad()
    def __call__(self, waves: torch.Tensor, anchors: torch.Tensor, target: torch.Tensor,
                 interferer_text: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Rewards ``(G, B)`` for ``waves (G, B, S)``, with each term ``(G, B)`` for logging.
        ``target (B, S)``, ``anchors`` and ``interferer_text`` ``(B, D)``."""
        groups, batch = waves.shape[:2]
        embedded = self.embed_waves(waves.reshape(groups * batch, -1).float()).reshape(groups, batch, -1)
        parts = {  # every term, weighted or not: the unweighted ones are logged (and probed) for free
            "semantic": (embedded * anchors[None].float()).sum(-1),
            "si_sdr": si_sdr(waves.float(), target[None].float()) / 10.0,
            "leakage": -(embedded * F.normalize(interferer_text.float(), dim=-1)[None]).sum(-1),
        }
        total = torch.zeros_like(parts["semantic"])
        for name, value in parts.items():
            if getattr(self.cfg.weights, name):  # skipped, not multiplied by 0: an unweighted -inf SI-SDR stays out
                total = total + getattr(self.cfg.weights, name) * value
        return total, parts


def load_mlbp(path: str | Path) -> MLBPFusion:
    """The MLBP module written by the ``train_fusion`` stage."""
    payload = read_payload(path, "marssep-mlbp-v1", "MLBP fusion file (made by `dvc repro train_fusion`)")
    fusion = MLBPFusion(int(payload["dim"]), int(payload["rank"]))
    fusion.load_state_dict(payload["state_dict"])
    return fusion.eval()
