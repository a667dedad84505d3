"""An ImageBind-architecture tri-modal encoder (audio, text, vision), written for this project.

Module names follow the official checkpoint layout (``modality_preprocessors.<m>``,
``modality_trunks.<m>``, ``modality_heads.<m>``, ``modality_postprocessors.<m>``), so the
``imagebind_huge`` configuration loads ``imagebind_huge.pth`` key for key (audio, text and vision;
the other modalities are skipped and reported by ``marssep_core.encoders.checkpoint``).

Shapes (``B`` batch, ``S`` clips per input):
- audio: log-mel fbank ``(B, 1, mel_bins, frames)`` or ``(B, S, 1, mel_bins, frames)``
- vision: images ``(B, 3, H, W)``, turned into a 2-frame video inside the stem
- text: token ids ``(B, context_length)``; the end-of-text token has the largest id
Each ``embed_<modality>`` returns ``(B, out_dim)``, L2-normalised and multiplied by the
modality's logit scale (audio: fixed 20; text: learnable; vision: 1), as the official model does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TrunkSpec:
    """Width, depth and heads of one modality's transformer."""

    dim: int
    blocks: int
    heads: int


@dataclass(frozen=True)
class ImageBindConfig:
    """Architecture hyper-parameters; ``imagebind_huge()`` gives the official ones."""

    out_dim: int = 1024
    audio: TrunkSpec = TrunkSpec(768, 12, 12)
    text: TrunkSpec = TrunkSpec(1024, 24, 16)
    vision: TrunkSpec = TrunkSpec(1280, 32, 16)
    image_size: int = 224
    patch_size: int = 14
    mel_bins: int = 128
    audio_frames: int = 204
    audio_kernel: int = 16
    audio_stride: int = 10
    context_length: int = 77
    vocab_size: int = 49408
    audio_drop_path: float = 0.1
    text_logit_scale_init: float = 1 / 0.07
    audio_logit_scale: float = 20.0

    @property
    def audio_patches(self) -> int:
        rows = (self.mel_bins - self.audio_kernel) // self.audio_stride + 1
        cols = (self.audio_frames - self.audio_kernel) // self.audio_stride + 1
        return rows * cols

    @property
    def vision_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def imagebind_huge() -> ImageBindConfig:
    return ImageBindConfig()


def tiny() -> ImageBindConfig:
    """CPU-sized: same code and preprocessing, small widths and coarser patches (audio 16x16
    without overlap: 96 patches instead of 228; vision 28x28: 64 instead of 256). 6.1 M
    parameters, 4.7 M of them the 49408-token text embedding table."""
    return ImageBindConfig(
        out_dim=128,
        audio=TrunkSpec(96, 3, 4),
        text=TrunkSpec(96, 2, 4),
        vision=TrunkSpec(96, 2, 4),
        patch_size=28,
        audio_stride=16,
    )


PRESETS = {"imagebind_huge": imagebind_huge, "tiny": tiny}


# ----------------------------------------------------------------------------- preprocessors
class PositionalEmbedding(nn.Module):
    """Holds ``pos_embed`` ``(1, tokens, dim)``."""

    def __init__(self, tokens: int, dim: int):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)


class AudioStem(nn.Module):
    """Conv patchify (kernel 16, stride 10, no bias) + LayerNorm: ``(B, 1, M, T) -> (B, N, D)``."""

    def __init__(self, cfg: ImageBindConfig):
        super().__init__()
        dim = cfg.audio.dim
        self.proj = nn.Conv2d(1, dim, cfg.audio_kernel, stride=cfg.audio_stride, bias=False)
        self.norm_layer = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_layer(self.proj(x).flatten(2).transpose(1, 2))


class RepeatToVideo(nn.Module):
    """``(B, 3, H, W) -> (B, 3, frames, H, W)`` by repetition (images as 2-frame videos)."""

    def __init__(self, frames: int = 2):
        super().__init__()
        self.frames = frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(2).expand(-1, -1, self.frames, -1, -1) if x.ndim == 4 else x


class VisionStem(nn.Module):
    """``proj = [RepeatToVideo, Conv3d(kernel 2 x p x p)]``: ``(B, 3, H, W) -> (B, N, D)``."""

    def __init__(self, cfg: ImageBindConfig):
        super().__init__()
        patch = cfg.patch_size
        self.proj = nn.Sequential(
            RepeatToVideo(2), nn.Conv3d(3, cfg.vision.dim, (2, patch, patch), stride=(2, patch, patch), bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class PatchPreprocessor(nn.Module):
    """Stem, then a class token, then learned positional embeddings."""

    def __init__(self, stem: nn.Module, dim: int, patches: int):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.rgbt_stem = stem
        self.pos_embedding_helper = PositionalEmbedding(patches + 1, dim)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.rgbt_stem(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return tokens + self.pos_embedding_helper.pos_embed


class TextPreprocessor(nn.Module):
    """Token + positional embeddings; ``mask`` is the causal attention mask (a saved buffer)."""

    def __init__(self, cfg: ImageBindConfig):
        super().__init__()
        dim, length = cfg.text.dim, cfg.context_length
        self.pos_embed = nn.Parameter(torch.empty(1, length, dim))
        self.token_embedding = nn.Embedding(cfg.vocab_size, dim)
        self.register_buffer("mask", torch.full((length, length), float("-inf")).triu(1))
        nn.init.normal_(self.pos_embed, std=0.01)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(tokens) + self.pos_embed[:, : tokens.shape[1]]


# ----------------------------------------------------------------------------- trunks
class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block; ``drop_path`` is stochastic depth during training."""

    def __init__(self, dim: int, heads: int, add_bias_kv: bool, drop_path: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, bias=True, add_bias_kv=add_bias_kv, batch_first=True)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)
        self.drop_path = drop_path

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_path == 0.0:
            return x
        keep = torch.rand(x.shape[0], 1, 1, device=x.device) >= self.drop_path
        return x * keep / (1.0 - self.drop_path)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm_1(x)
        x = x + self._drop(self.attn(h, h, h, need_weights=False, attn_mask=attn_mask)[0])
        return x + self._drop(self.mlp(self.norm_2(x)))


class Trunk(nn.Module):
    """``pre_transformer_layer`` (a LayerNorm for vision, nothing otherwise) then the blocks."""

    def __init__(self, spec: TrunkSpec, pre_norm: bool, add_bias_kv: bool, drop_path: float):
        super().__init__()
        self.pre_transformer_layer = nn.Sequential(nn.LayerNorm(spec.dim, eps=1e-6) if pre_norm else nn.Identity())
        # stochastic depth grows linearly with depth (plain floats: the model may live on meta)
        rates = [drop_path * i / max(1, spec.blocks - 1) for i in range(spec.blocks)]
        self.blocks = nn.ModuleList(Block(spec.dim, spec.heads, add_bias_kv, rate) for rate in rates)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.pre_transformer_layer(x)
        for block in self.blocks:
            x = block(x, attn_mask)
        return x


# ----------------------------------------------------------------------------- heads
class SelectToken(nn.Module):
    """Pick token ``index`` (the class token): ``(B, N, D) -> (B, D)``."""

    def __init__(self, index: int = 0):
        super().__init__()
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.index]


class TextHead(nn.Module):
    """Take the end-of-text token's features, then ``proj = [LayerNorm, Linear]``."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, out_dim, bias=False))

    def forward(self, x: torch.Tensor, eos_index: torch.Tensor) -> torch.Tensor:
        return self.proj(x[torch.arange(x.shape[0], device=x.device), eos_index])


class Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1)


class LogitScale(nn.Module):
    """Multiply by ``exp(log_logit_scale)`` (capped at 100); learnable or a fixed saved buffer."""

    def __init__(self, init: float, learnable: bool):
        super().__init__()
        value = torch.tensor(math.log(init))
        if learnable:
            self.log_logit_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_logit_scale", value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.log_logit_scale.exp().clamp(max=100.0)


# ----------------------------------------------------------------------------- model
class ImageBindModel(nn.Module):
    """The tri-modal encoder. ``embed(modality, inputs)`` -> ``(B, out_dim)``."""

    def __init__(self, cfg: ImageBindConfig):
        super().__init__()
        self.cfg = cfg
        a, t, v = cfg.audio, cfg.text, cfg.vision
        self.modality_preprocessors = nn.ModuleDict(
            {
                "audio": PatchPreprocessor(AudioStem(cfg), a.dim, cfg.audio_patches),
                "text": TextPreprocessor(cfg),
                "vision": PatchPreprocessor(VisionStem(cfg), v.dim, cfg.vision_patches),
            }
        )
        self.modality_trunks = nn.ModuleDict(
            {
                "audio": Trunk(a, pre_norm=False, add_bias_kv=True, drop_path=cfg.audio_drop_path),
                "text": Trunk(t, pre_norm=False, add_bias_kv=False, drop_path=0.0),
                "vision": Trunk(v, pre_norm=True, add_bias_kv=False, drop_path=0.0),
            }
        )
        self.modality_heads = nn.ModuleDict(
            {
                "audio": nn.Sequential(nn.LayerNorm(a.dim, eps=1e-6), SelectToken(0), nn.Linear(a.dim, cfg.out_dim, bias=False)),
                "text": TextHead(t.dim, cfg.out_dim),
                "vision": nn.Sequential(nn.LayerNorm(v.dim, eps=1e-6), SelectToken(0), nn.Linear(v.dim, cfg.out_dim, bias=False)),
            }
        )
        self.modality_postprocessors = nn.ModuleDict(
            {
                "audio": nn.Sequential(Normalize(), LogitScale(cfg.audio_logit_scale, learnable=False)),
                "text": nn.Sequential(Normalize(), LogitScale(cfg.text_logit_scale_init, learnable=True)),
                "vision": nn.Sequential(Normalize()),
            }
        )

    def features(self, modality: str, inputs: torch.Tensor) -> torch.Tensor:
        """Head output before the postprocessor, ``(B, out_dim)``, for single-clip inputs."""
        tokens = self.modality_preprocessors[modality](inputs)
        if modality == "text":
            length = inputs.shape[1]
            mask = self.modality_preprocessors["text"].mask[:length, :length]
            hidden = self.modality_trunks["text"](tokens, attn_mask=mask)
            return self.modality_heads["text"](hidden, eos_index=inputs.argmax(dim=-1))
        return self.modality_heads[modality](self.modality_trunks[modality](tokens))

    def embed(self, modality: str, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, out_dim)`` as the official postprocessor leaves it (normalised x logit scale).

        With several audio clips the official model normalises each clip, scales, then averages;
        so does this.
        """
        if modality == "audio" and inputs.ndim == 5:
            batch, clips = inputs.shape[:2]
            per_clip = self.embed("audio", inputs.flatten(0, 1))
            return per_clip.reshape(batch, clips, -1).mean(dim=1)
        return self.modality_postprocessors[modality](self.features(modality, inputs))
