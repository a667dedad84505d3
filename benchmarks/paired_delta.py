"""Paired comparison of two trained pipelines on the same test pairs.

A data change re-draws the test pairs (new recordings enter the test split) and retrains the
encoder, so the two runs' test means are not over the same pairs. This scores both separators on
the *baseline's* pairs whose target and interferer are test clips in both runs (a clip that moved
to training in the new run would leak), each with its own audio bank and query bank, and reports per corpus and
query kind the mean ± standard error of the per-pair difference (new minus baseline).

    git worktree add /tmp/base <baseline commit> && (cd /tmp/base && dvc pull)   # the baseline's outputs
    python benchmarks/paired_delta.py --baseline /tmp/base --new . --out benchmarks/results/paired_delta.json

Each side is a checkout with ``data/clean/test_pairs.csv``, ``data/clean/clips.parquet``,
``data/audio_bank``, ``data/query_bank.pt`` and ``models/separator_sup.pt``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from marssep_core.audio.signal import mean_and_stderr
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.separation.evaluate import evaluate_pairs
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import load_separator


def clip_splits(checkout: Path) -> dict[str, str]:
    """``{clip_id: split}`` of the clips kept by cleaning (quarantined clips have no split)."""
    clips = pd.read_parquet(checkout / "data/clean/clips.parquet", columns=["clip_id", "split"]).dropna()
    return dict(zip(clips["clip_id"], clips["split"]))


def shared_pairs(baseline: Path, new: Path) -> pd.DataFrame:
    """The baseline's test pairs whose target and interferer are test clips in both checkouts and
    whose audio query (a clip of any split, as the test protocol draws it) both keep."""
    pairs = pd.read_csv(baseline / "data/clean/test_pairs.csv", keep_default_na=False)
    before, after = clip_splits(baseline), clip_splits(new)
    keep = np.ones(len(pairs), dtype=bool)
    for column in ("target_clip", "interferer_clip"):
        keep &= np.array([before.get(c) == "test" and after.get(c) == "test" for c in pairs[column]])
    keep &= np.array([c in before and c in after for c in pairs["query_audio_clip"]])
    return pairs[keep].reset_index(drop=True)


def score(checkout: Path, pairs: pd.DataFrame, model: str) -> pd.DataFrame:
    separator, _ = load_separator(checkout / model)
    bank = load_audio_bank(checkout / "data/audio_bank")
    queries = QueryBank.load(checkout / "data/query_bank.pt")
    _, table = evaluate_pairs(separator=separator, pairs=pairs, bank=bank, queries=queries, oracle=False)
    return table


def paired_summary(baseline: pd.DataFrame, new: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """``{corpus: {kind: {baseline, new, delta, delta_se, n}}}`` over pairs scored by both."""
    kinds = [c[len("si_sdri_"):] for c in baseline.columns if c.startswith("si_sdri_")]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for corpus in ["all", *sorted(baseline["corpus"].unique())]:
        rows = np.ones(len(baseline), dtype=bool) if corpus == "all" else (baseline["corpus"] == corpus).to_numpy()
        out[corpus] = {}
        for kind in kinds:
            before, after = baseline[f"si_sdri_{kind}"].to_numpy()[rows], new[f"si_sdri_{kind}"].to_numpy()[rows]
            valid = np.isfinite(before) & np.isfinite(after)
            delta, delta_se = mean_and_stderr(after[valid] - before[valid])
            out[corpus][kind] = {"baseline": round(float(before[valid].mean()), 3), "new": round(float(after[valid].mean()), 3),
                                 "delta": round(delta, 3), "delta_se": round(delta_se, 3), "n": int(valid.sum())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="checkout of the baseline run")
    parser.add_argument("--new", type=Path, default=Path("."), help="checkout of the new run")
    parser.add_argument("--model", default="models/separator_sup.pt", help="model file inside each checkout")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/paired_delta.json"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pairs = shared_pairs(args.baseline, args.new)
    summary = paired_summary(score(args.baseline, pairs, args.model), score(args.new, pairs, args.model))
    result = {"baseline": str(args.baseline), "new": str(args.new), "model": args.model,
              "pairs": int(len(pairs)), "si_sdri_by_corpus": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for corpus, kinds in summary.items():
        print(corpus, {kind: f"{v['delta']:+.2f} ± {v['delta_se']:.2f} (n={v['n']})" for kind, v in kinds.items()})


if __name__ == "__main__":
    main()
