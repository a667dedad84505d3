"""What the gap between the test pairs and the cross-source set is made of: text SI-SDRi by how
much of the target crop sounds, per corpus, and per target class on the cross-source set.

The everyday test clips are mostly short calls padded into 4 s crops, the cross-source
recordings mostly sound throughout, and a target that sounds throughout overlaps its interferer
more. Comparing the two sets inside the same activity bin separates that difference of
composition from a difference of recordings (timbre, room, players).

    python benchmarks/cross_source_gap.py   # -> benchmarks/results/cross_source_gap.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from paired_delta import test_and_cross_source_sets  # benchmarks/, the script's folder

from marssep_core.audio.features import frame_rms_db
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.separation.data import pair_signals
from marssep_core.separation.evaluate import evaluate_pairs
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import load_separator

FRAME = 400  # 25 ms at 16 kHz
ACTIVE_DB = 40.0  # a frame sounds when it is within this many dB of the crop's loudest frame
BINS = (0.0, 0.25, 0.5, 0.75, 1.0)


def active_share(wave: np.ndarray) -> float:
    """The share of ``wave``'s frames within ``ACTIVE_DB`` of its loudest."""
    levels = frame_rms_db(wave, FRAME)
    return float(np.mean(levels > levels.max() - ACTIVE_DB))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/separator_sup.pt"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cross_source_gap.json"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    separator, _ = load_separator(args.model)
    bank, queries = load_audio_bank(Path("data/audio_bank")), QueryBank.load(Path("data/query_bank.pt"))
    sets = test_and_cross_source_sets(Path("."), bank)
    result: dict = {"model": str(args.model), "active_db": ACTIVE_DB, "by_activity": {}}
    for name, (set_bank, pairs) in sets.items():
        _, table = evaluate_pairs(separator=separator, pairs=pairs, bank=set_bank, queries=queries, oracle=False, kinds=("text",))
        _, target, _ = pair_signals(pairs, set_bank)
        table["target_active"] = [active_share(wave) for wave in target]
        table["bin"] = pd.cut(table["target_active"], BINS, include_lowest=True).astype(str)
        for corpus, part in table.groupby("corpus"):
            result["by_activity"].setdefault(str(corpus), {})[name] = {
                "mean_target_active": round(float(part["target_active"].mean()), 3),
                "text": round(float(part["si_sdri_text"].mean()), 3),
                "bins": {b: {"text": round(float(g["si_sdri_text"].mean()), 3), "n": int(len(g))} for b, g in part.groupby("bin")},
            }
        if name == "cross_source":
            result["cross_source_by_class"] = {
                str(corpus): {str(c): round(float(v), 3) for c, v in part.groupby("target_class")["si_sdri_text"].mean().items()}
                for corpus, part in table.groupby("corpus")}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["by_activity"], indent=1))


if __name__ == "__main__":
    main()
