"""Does the separator follow its query? The fixed test pairs separated twice: with the target's
text query (scored against the target) and with the interferer's (scored against the interferer,
and against the target). A model that ignored the query would extract the same, louder source both
times; one that follows it extracts each source about as well, and the interferer query's output
scores far below the mixture against the target. Per corpus and per third of the SNR range.
Results go to ``benchmarks/results/query_swap.json``.

    python benchmarks/query_swap.py [--model models/separator_sup.pt]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from marssep_core.audio.signal import pair_si_sdri, si_sdr_np
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.separation.data import pair_queries, pair_signals
from marssep_core.separation.evaluate import separate_batch
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import load_separator

ROOT = Path(__file__).resolve().parents[1]
SNR_THIRDS = ((-5.0, -5.0 / 3), (-5.0 / 3, 5.0 / 3), (5.0 / 3, 5.0 + 1e-9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "separator_sup.pt")
    parser.add_argument("--queries", type=Path, default=ROOT / "data" / "query_bank.pt")
    parser.add_argument("--bank", type=Path, default=ROOT / "data" / "audio_bank")
    parser.add_argument("--pairs", type=Path, default=ROOT / "data" / "clean" / "test_pairs.csv")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "query_swap.json")
    args = parser.parse_args()
    separator, _ = load_separator(args.model)
    queries = QueryBank.load(args.queries)
    pairs = pd.read_csv(args.pairs, keep_default_na=False)
    mixture, target, interferer = pair_signals(pairs, load_audio_bank(args.bank))
    own = separate_batch(separator, mixture, pair_queries(pairs, queries)["text"])
    swapped = separate_batch(separator, mixture, queries.text_of(pairs["interferer_class"].tolist()))
    _, target_by_own = pair_si_sdri(own, target, si_sdr_np(mixture, target))
    _, interferer_by_swapped = pair_si_sdri(swapped, interferer, si_sdr_np(mixture, interferer))
    _, target_by_swapped = pair_si_sdri(swapped, target, si_sdr_np(mixture, target))
    snr = pairs["snr_db"].to_numpy()
    result: dict[str, dict[str, float]] = {}
    for corpus in sorted(pairs["corpus"].unique()):
        rows = pairs["corpus"].to_numpy() == corpus
        groups = {"all": rows} | {f"snr_{lo:+.1f}_{hi:+.1f}": rows & (snr >= lo) & (snr < hi) for lo, hi in SNR_THIRDS}
        for name, selected in groups.items():
            result[f"{corpus}.{name}"] = {
                "pairs": int(selected.sum()),
                "target_query_si_sdri_target": round(float(np.mean(target_by_own[selected])), 3),
                "interferer_query_si_sdri_interferer": round(float(np.mean(interferer_by_swapped[selected])), 3),
                "interferer_query_si_sdri_target": round(float(np.mean(target_by_swapped[selected])), 3),
            }
    args.out.write_text(json.dumps({"model": str(args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model),
                                    "torch_threads": torch.get_num_threads(), "by_corpus": result}, indent=2) + "\n")
    for key, row in result.items():
        print(key, row)


if __name__ == "__main__":
    main()
