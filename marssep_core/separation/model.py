"""The query-conditioned mask network: a U-Net over the log-magnitude spectrogram.

Input ``|X|`` ``(B, F, T)`` and a query embedding ``q`` ``(B, D)``; output mask logits (and the
mask proposal ``P = sigmoid(logits)`` in [0, 1]) of shape ``(B, F, T)``.

Architecture (Sound-of-Pixels / CLIPSep U-Net, sizes from params):
- the frequency axis is warped to ``warp_bins`` bins (a fixed matrix, so the ONNX graph is plain
  MatMuls) on a log scale or a mel-like one (``warp_scale``), the log-magnitude is normalised
  per example;
- ``downs`` stride-2 4x4 convolutions (channels ``channels * 2**i`` capped at ``8 * channels``),
  a mirrored decoder with bilinear upsampling, 3x3 convolutions and skip connections;
- GroupNorm instead of BatchNorm: the RL stage compares the policy with its own snapshot on the
  same batch, and batch statistics would make that ratio depend on the batch composition;
- conditioning: optional FiLM of every encoder and decoder block by the query (identity at
  initialisation), then CLIPSep/OmniSep's inner-product head: ``K`` feature maps are weighted by
  ``W q`` and offset by ``b(q)``;
- optionally (``active_norm``) the standardisation ignores digitally silent bins (zero padding);
- optionally (``input_skip``) the normalised input joins the full-resolution block;
- the logits are interpolated back to the linear frequency axis.

``members > 1`` makes the network a ``MaskEnsemble``: that many U-Nets of this architecture,
initialised apart, each trained with its own loss (``forward(..., per_member=True)``) on the same batches or, with
``split_batch``, each on its own share of every batch; the mask averages their logits. ``build_mask_net`` builds
either from a config.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

MAGNITUDE_FLOOR = 1e-5
LOG_FLOOR = math.log(MAGNITUDE_FLOOR)
WARP_SCALES = ("log", "mel")  # MaskNetConfig.warp_scale


@dataclass(frozen=True)
class MaskNetConfig:
    """Architecture of ``MaskUNet``; ``n_freq`` and ``query_dim`` come from the STFT and encoder."""

    n_freq: int = 513
    query_dim: int = 128
    warp_bins: int = 128  # 0: no warping (the U-Net sees all n_freq bins)
    # "log": log-spaced bins, which oversample the lowest linear bins (128 warped bins spend 61 on
    # the 19 linear bins below 300 Hz); "mel": a * ln(1 + f / c) with the corner c where the lowest
    # spacing is one linear bin, so those bins go to the harmonics above instead (WARP_SCALES).
    # "log" here because model files written before the option hold no key (the pipeline's
    # default, train_supervised.model.warp_scale, is "mel")
    warp_scale: str = "log"
    downs: int = 5
    channels: int = 16
    mask_channels: int = 32  # K feature maps combined by the query (inner-product head)
    film: bool = True
    # the normalised input joins the full-resolution block (a skip from the top): every other
    # feature there is upsampled from half resolution, too coarse for harmonics a semitone apart
    input_skip: bool = False
    # standardise the log-magnitude over its non-silent bins only: a short clip zero-padded to a
    # 4 s crop is mostly digital silence, whose floor would otherwise set the mean and the scale
    active_norm: bool = False
    # the logits are divided by it: 1 while training; afterwards ``train_supervised`` picks it on
    # the validation pairs (``mask_temperatures``), softening a mask the weighted BCE makes too sure
    temperature: float = 1.0
    # independently initialised U-Nets whose logits are averaged (MaskEnsemble); 1: one U-Net
    members: int = 1

    def __post_init__(self):
        if self.warp_scale not in WARP_SCALES:
            raise ValueError(f"warp_scale must be one of {WARP_SCALES}, got {self.warp_scale!r}")


def warp_positions(n_freq: int, bins: int, scale: str = "log") -> torch.Tensor:
    """``bins`` increasing positions on the linear bin axis, from bin 0 to bin ``n_freq - 1``.

    ``log``: ``10 ** u - 1`` for ``u`` evenly spaced (spacing under one bin at the bottom).
    ``mel``: bin ``i`` at ``c * (exp(i / a) - 1)``, the inverse of ``a * ln(1 + f / c)`` (the mel
    scale's form), ``a`` so the top bin lands on ``n_freq - 1`` and the corner ``c`` so the first
    spacing is about one linear bin (``c = a``): linear below the corner, logarithmic above it."""
    top = float(n_freq - 1)
    if scale == "log":
        return torch.logspace(0.0, math.log10(n_freq), bins, dtype=torch.float64) - 1.0
    low, high = 1e-6, top  # c - (bins - 1) / ln(1 + top / c) rises with c: bisect for its zero
    for _ in range(100):
        corner = 0.5 * (low + high)
        low, high = (corner, high) if corner < (bins - 1) / math.log1p(top / corner) else (low, corner)
    bins_per_e = (bins - 1) / math.log1p(top / corner)  # the mel form's a
    positions = corner * torch.expm1(torch.arange(bins, dtype=torch.float64) / bins_per_e)
    positions[-1] = top  # exact despite rounding
    return positions


def warp_matrices(n_freq: int, bins: int, scale: str = "log") -> tuple[torch.Tensor, torch.Tensor]:
    """``(to_warped (bins, n_freq), to_linear (n_freq, bins))`` for the positions of ``scale``.

    ``to_warped`` averages linear bins with triangles centred on the warped positions (half-width
    the local spacing, at least one bin: plain linear interpolation at low frequencies, an
    anti-aliased average at high ones). ``to_linear`` linearly interpolates warped values back.
    """
    pos = warp_positions(n_freq, bins, scale)
    spacing = torch.diff(pos, prepend=pos[:1] - 1.0).clamp(min=1.0)
    linear = torch.arange(n_freq, dtype=torch.float64)
    to_warped = (1.0 - (linear[None, :] - pos[:, None]).abs() / spacing[:, None]).clamp(min=0.0)
    to_warped = to_warped / to_warped.sum(dim=1, keepdim=True)
    upper = torch.searchsorted(pos, linear).clamp(1, bins - 1)
    lower = upper - 1
    frac = ((linear - pos[lower]) / (pos[upper] - pos[lower])).clamp(0.0, 1.0)
    to_linear = torch.zeros(n_freq, bins, dtype=torch.float64)
    to_linear[torch.arange(n_freq), lower] = 1.0 - frac
    to_linear[torch.arange(n_freq), upper] += frac
    return to_warped.float(), to_linear.float()


def standardize(x: torch.Tensor, active_only: bool) -> torch.Tensor:
    """Per-example standardisation of log-magnitudes ``(B, 1, F, T)``; ``active_only``: the mean
    and the (population) deviation come from the bins above the silence floor only."""
    if not active_only:
        return (x - x.mean(dim=(2, 3), keepdim=True)) / (x.std(dim=(2, 3), keepdim=True) + 1e-5)
    active = (x > LOG_FLOOR + 0.5).to(x.dtype)
    count = active.sum(dim=(2, 3), keepdim=True).clamp(min=1.0)
    mean = (x * active).sum(dim=(2, 3), keepdim=True) / count
    std = (((x - mean) ** 2 * active).sum(dim=(2, 3), keepdim=True) / count).sqrt()
    return (x - mean) / (std + 1e-5)


def float32_under_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """Float32 for what it wraps when autocast is on (bf16 training); nothing otherwise, so float32
    runs and the exported graph are unchanged. The frequency warp and the mask head sit in it, so
    bf16 (8 bits of mantissa) only reaches the convolutions; it did not keep bf16 training from
    losing the real instruments (docs/separator.md, "Cheaper ensembles")."""
    return torch.autocast(device_type, enabled=False) if torch.is_autocast_enabled(device_type) else contextlib.nullcontext()


def query_head(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The inner-product head: ``features (B, K, F, T)`` weighted by ``weights[:, :K]`` plus the
    offset ``weights[:, K]`` (``weights (B, K + 1)``) -> ``(B, F, T)``.

    Written as one batched matrix-vector product: bit-identical in torch to
    ``einsum("bkft,bk->bft")`` forward and backward (tested), and one fused MatMul in
    onnxruntime, whose Einsum kernel took 30 % of the exported graph's operator time
    (docs/serving.md)."""
    batch, _, height, width = features.shape
    combined = (features.flatten(2).transpose(1, 2) @ weights[:, :-1, None]).view(batch, height, width)
    return combined + weights[:, -1, None, None]


class _FiLM(nn.Module):
    """``x * (1 + gamma(q)) + beta(q)`` per channel; starts as the identity."""

    def __init__(self, query_dim: int, channels: int):
        super().__init__()
        self.linear = nn.Linear(query_dim, 2 * channels)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.linear(query).chunk(2, dim=-1)
        return x * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]


class _Down(nn.Module):
    def __init__(self, c_in: int, c_out: int, query_dim: int, film: bool):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1)
        self.norm = nn.GroupNorm(min(8, c_out), c_out)
        self.film = _FiLM(query_dim, c_out) if film else None

    def forward(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        return F.leaky_relu(self.film(x, query) if self.film is not None else x, 0.2)


class _Up(nn.Module):
    def __init__(self, c_in: int, c_out: int, query_dim: int, film: bool, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=kernel, padding=kernel // 2)
        self.norm = nn.GroupNorm(min(8, c_out), c_out)
        self.film = _FiLM(query_dim, c_out) if film else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, query: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        x = self.norm(self.conv(x))
        return F.relu(self.film(x, query) if self.film is not None else x)


class MaskUNet(nn.Module):
    """``(|X| (B, F, T), q (B, D)) -> mask logits (B, F, T)``; ``mask()`` applies the sigmoid."""

    def __init__(self, cfg: MaskNetConfig):
        super().__init__()
        if cfg.members != 1:
            raise ValueError(f"MaskUNet is one network; members={cfg.members} is a MaskEnsemble (build_mask_net)")
        self.cfg = cfg
        to_warped, to_linear = warp_matrices(cfg.n_freq, cfg.warp_bins, cfg.warp_scale) if cfg.warp_bins else (None, None)
        self.register_buffer("to_warped", to_warped, persistent=False)
        self.register_buffer("to_linear", to_linear, persistent=False)
        widths = [cfg.channels * min(2**i, 8) for i in range(cfg.downs)]
        self.downs = nn.ModuleList(
            _Down(c_in, c_out, cfg.query_dim, cfg.film) for c_in, c_out in zip([1, *widths[:-1]], widths)
        )
        ups = []
        for level in reversed(range(cfg.downs)):
            # upsample to the resolution of down block ``level - 1`` and concatenate its output
            c_in = widths[level] + (widths[level - 1] if level > 0 else int(cfg.input_skip))
            c_out = widths[level - 1] if level > 0 else cfg.mask_channels
            # the full-resolution block is 40% of the FLOPs with a 3x3 kernel: 1x1 there
            ups.append(_Up(c_in, c_out, cfg.query_dim, cfg.film, kernel=3 if level > 0 else 1))
        self.ups = nn.ModuleList(ups)
        self.query_weights = nn.Linear(cfg.query_dim, cfg.mask_channels + 1)  # K weights + bias

    def forward(self, magnitude: torch.Tensor, query: torch.Tensor, per_member: bool = False,
                split_batch: bool = False) -> torch.Tensor:
        """Logits ``(B, F, T)``; ``per_member``: ``(1, B, F, T)``, the ``MaskEnsemble`` interface
        (whose ``split_batch`` is the whole batch for one network)."""
        frames = magnitude.shape[-1]
        with float32_under_autocast(magnitude.device.type):
            x = torch.log(magnitude.clamp(min=MAGNITUDE_FLOOR))
            if self.to_warped is not None:
                x = torch.matmul(self.to_warped, x)  # (B, W, T)
            x = standardize(x[:, None], active_only=self.cfg.active_norm)
        multiple = 2**self.cfg.downs
        bins = x.shape[2]
        x = F.pad(x, (0, (-frames) % multiple, 0, (-bins) % multiple))
        skips = []
        top = x if self.cfg.input_skip else None
        for down in self.downs:
            x = down(x, query)
            skips.append(x)
        skips = [*reversed(skips[:-1]), top]  # the last block returns to full resolution
        for up, skip in zip(self.ups, skips):
            x = up(x, skip, query)
        with float32_under_autocast(x.device.type):
            # the blocks' output is bf16 under autocast; the head computes in the weights' dtype
            logits = query_head(x.to(self.query_weights.weight.dtype), self.query_weights(query))
            logits = logits[:, :bins, :frames]
            if self.to_linear is not None:
                logits = torch.matmul(self.to_linear, logits)
        logits = logits / self.cfg.temperature
        return logits[None] if per_member else logits

    def mask(self, magnitude: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """The mask proposal ``P`` in [0, 1], ``(B, F, T)``."""
        return torch.sigmoid(self(magnitude, query))


class MaskEnsemble(nn.Module):
    """``cfg.members`` ``MaskUNet`` s of one architecture; ``(|X| (B, F, T), q (B, D)) -> the mean
    of their logits (B, F, T)``, divided by ``cfg.temperature`` (the members' own is 1).

    The members are initialised one after the other from the torch generator, so apart. Training
    gives each its own loss on the same batch (``per_member``), so they stay independent models
    whose errors partly cancel in the mean; a loss on the mean would train one wider network."""

    def __init__(self, cfg: MaskNetConfig):
        super().__init__()
        if cfg.members < 2:
            raise ValueError(f"a MaskEnsemble needs at least 2 members, got {cfg.members}")
        self.cfg = cfg
        member = dataclasses.replace(cfg, members=1, temperature=1.0)
        self.members = nn.ModuleList(MaskUNet(member) for _ in range(cfg.members))

    def forward(self, magnitude: torch.Tensor, query: torch.Tensor, per_member: bool = False,
                split_batch: bool = False) -> torch.Tensor:
        """The mean logits ``(B, F, T)``; ``per_member``: each member's, ``(members, B, F, T)``, at
        temperature 1 (what training gives each its loss on; through ``forward`` so a DDP wrapper
        sees the call). ``split_batch`` (with ``per_member``): member ``i`` sees only the ``i``-th of
        ``members`` equal consecutive shares of the batch, ``(members, B / members, F, T)``."""
        if split_batch and per_member:
            if magnitude.shape[0] % len(self.members):
                raise ValueError(f"a batch of {magnitude.shape[0]} does not split among {len(self.members)} members")
            shares = zip(magnitude.chunk(len(self.members)), query.chunk(len(self.members)))
            return torch.stack([net(part, part_query) for net, (part, part_query) in zip(self.members, shares)])
        logits = torch.stack([net(magnitude, query) for net in self.members])
        return logits if per_member else logits.mean(dim=0) / self.cfg.temperature

    def mask(self, magnitude: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """The mask proposal ``P`` in [0, 1], ``(B, F, T)``."""
        return torch.sigmoid(self(magnitude, query))


MaskNet = MaskUNet | MaskEnsemble


def build_mask_net(cfg: MaskNetConfig) -> MaskNet:
    """A ``MaskUNet`` for ``cfg.members == 1``, else a ``MaskEnsemble``."""
    return MaskUNet(cfg) if cfg.members == 1 else MaskEnsemble(cfg)

