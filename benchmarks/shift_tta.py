"""Shift test-time augmentation (demucs' ``shifts``) for the mask separator, on the same pairs.

Each variant delays the mixture by a few sample offsets, separates every delayed copy, removes
the delay and averages the estimates: the STFT frames (sub-hop offsets) and the U-Net's stride-32
grid (offsets of many frames) fall elsewhere for each copy, so their errors partly differ. The
delay is filled with zeros (``constant``) or the mixture's reflection (``reflect``: zeros would
add digital silence, which moves the per-example standardisation of the log-magnitude). Each
variant is compared pair by pair with the plain estimate (variant minus plain, mean ± s.e.) on
the test pairs and the cross-source set, for text and audio queries.

    python benchmarks/shift_tta.py --out benchmarks/results/shift_tta.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from paired_delta import compare_variants  # benchmarks/, the script's folder

from marssep_core.separation.separator import Separator, load_separator

# name: (offsets in samples, padding mode); hop 256 at 16 kHz, the U-Net's grid is 32 frames
VARIANTS = {
    "half hop, zeros": ((0, 128), "constant"),
    "16.5 frames, zeros": ((0, 4224), "constant"),
    "16.5 frames, reflect": ((0, 4224), "reflect"),
    "quarter hops, reflect": ((0, 64, 128, 192), "reflect"),
}


class ShiftedSeparator(torch.nn.Module):
    """``(mixture (B, N), query (B, D)) -> (B, N)``: the mean of ``separator``'s estimates of the
    mixture delayed by each of ``offsets`` samples (delay removed), the delay padded by ``mode``
    (no ``stft``: score it with ``oracle=False``)."""

    def __init__(self, separator: Separator, offsets: tuple[int, ...], mode: str):
        super().__init__()
        self.separator, self.offsets, self.mode = separator, offsets, mode

    def forward(self, mixture: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        total = torch.zeros_like(mixture)
        for offset in self.offsets:
            delayed = F.pad(mixture[:, None], (offset, 0), mode=self.mode)[:, 0]
            total += self.separator(delayed, query)[..., offset:]
        return total / len(self.offsets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", type=Path, default=Path("."))
    parser.add_argument("--model", type=Path, default=Path("models/separator_sup.pt"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/shift_tta.json"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    separator, _ = load_separator(args.checkout / args.model)
    variants = {name: ShiftedSeparator(separator, offsets, mode).eval() for name, (offsets, mode) in VARIANTS.items()}
    described = {name: {"offsets": list(offsets), "padding": mode} for name, (offsets, mode) in VARIANTS.items()}
    result = {"model": str(args.model), "variants": described,
              **compare_variants(checkout=args.checkout, baseline=separator, variants=variants, kinds=("text", "audio"))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
