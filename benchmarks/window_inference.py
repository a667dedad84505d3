"""Whole-crop inference against windows of the training crop length, on the same pairs.

The separator trains on 1 s crops (``train_supervised.mixing.crop_seconds``) and is scored on 4 s
pairs in one pass. This runs the same model on ``--windows`` (seconds:overlap) windows
cross-faded by the project's overlap-add (``audio/overlap_add.py``, what ``marssep separate
--segment`` does) and compares pair by pair with the one-pass estimate (new minus one pass,
mean ± s.e.), on the test pairs and the cross-source set.

    python benchmarks/window_inference.py   # -> benchmarks/results/window_inference.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from paired_delta import compare_variants  # benchmarks/, the script's folder

from marssep_core.audio.overlap_add import StreamingOverlapAdd
from marssep_core.separation.separator import Separator, load_separator


class WindowedSeparator(torch.nn.Module):
    """``(mixture (B, N), query (B, D)) -> (B, N)``: ``separator`` on ``segment``-sample windows
    overlapping by ``overlap``, every window of an item in one batched pass (no ``stft``: score it
    with ``oracle=False``)."""

    def __init__(self, separator: Separator, segment: int, overlap: float):
        super().__init__()
        self.separator, self.segment, self.overlap = separator, segment, overlap

    def forward(self, mixture: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        out = []
        for wave, item_query in zip(mixture.cpu().numpy(), query):
            def process(windows: np.ndarray, q: torch.Tensor = item_query) -> np.ndarray:
                flat = torch.from_numpy(windows[:, 0])
                return self.separator(flat, q.expand(len(flat), -1)).numpy()[:, None]

            windows = int(np.ceil(wave.shape[0] / (self.segment * (1.0 - self.overlap)))) + 1
            stream = StreamingOverlapAdd(process, channels=1, segment=self.segment, overlap=self.overlap, batch=windows)
            out.append(np.concatenate([stream.push(wave[None]), stream.finish()], axis=1)[0])
        return torch.from_numpy(np.stack(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", type=Path, default=Path("."))
    parser.add_argument("--model", type=Path, default=Path("models/separator_sup.pt"))
    parser.add_argument("--windows", nargs="+", default=["1.0:0.5", "2.0:0.5"], help="seconds:overlap per variant")
    parser.add_argument("--kinds", nargs="+", default=["text", "audio"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/window_inference.json"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    separator, _ = load_separator(args.checkout / args.model)
    variants = {}
    for spec in args.windows:
        seconds, overlap = (float(v) for v in spec.split(":"))
        variants[spec] = WindowedSeparator(separator, int(round(seconds * separator.sample_rate)), overlap)
    result = {"model": str(args.model), "windows": args.windows,
              **compare_variants(checkout=args.checkout, baseline=separator, variants=variants, kinds=tuple(args.kinds))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
