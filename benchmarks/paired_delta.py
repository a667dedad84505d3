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

Two separators trained on the same data (a training lever, say) are compared in one checkout:
``--baseline . --new . --new-model /tmp/lever/separator_sup.pt``; ``--cross-source
data/cross_source`` adds the same comparison on the cross-source set's pairs (which both
checkouts must draw alike).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from marssep_core.audio.signal import mean_and_stderr
from marssep_core.config import CleanConfig, load_section
from marssep_core.data.audio_bank import AudioBank, load_audio_bank
from marssep_core.data.cross_source import open_cross_source
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


def score(checkout: Path, pairs: pd.DataFrame | None, model: Path, cross_source: Path | None = None) -> pd.DataFrame:
    """Per-pair SI-SDRi of ``checkout/model`` on ``pairs``, or (``cross_source`` given) on the
    cross-source set's pairs as ``checkout`` draws them."""
    separator, _ = load_separator(checkout / model)
    bank = load_audio_bank(checkout / "data/audio_bank")
    queries = QueryBank.load(checkout / "data/query_bank.pt")
    if cross_source is not None:
        pairs_cfg = load_section(CleanConfig, "clean", checkout / "params.yaml").test_pairs
        bank, pairs = open_cross_source(directory=checkout / cross_source, raw_dir=checkout / "data/raw", corpus_clips=bank.index,
                                        sample_rate=bank.sample_rate, cfg=pairs_cfg)
    _, table = evaluate_pairs(separator=separator, pairs=pairs, bank=bank, queries=queries, oracle=False)
    return table


def test_and_cross_source_sets(checkout: Path, bank: AudioBank) -> dict[str, tuple[AudioBank, pd.DataFrame]]:
    """``{"test": (bank, test pairs), "cross_source": (its bank, its pairs)}`` of ``checkout``,
    the cross-source pairs drawn by the checkout's test-pair recipe."""
    pairs_cfg = load_section(CleanConfig, "clean", checkout / "params.yaml").test_pairs
    return {"test": (bank, pd.read_csv(checkout / "data/clean/test_pairs.csv", keep_default_na=False)),
            "cross_source": open_cross_source(directory=checkout / "data/cross_source", raw_dir=checkout / "data/raw",
                                              corpus_clips=bank.index, sample_rate=bank.sample_rate, cfg=pairs_cfg)}


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


def compare_variants(checkout: Path, baseline: torch.nn.Module, variants: dict[str, torch.nn.Module],
                     kinds: tuple[str, ...]) -> dict[str, object]:
    """``{"<set> <variant>": paired_summary}``: each of ``variants`` (separators) against
    ``baseline``, pair by pair, on ``checkout``'s test pairs and cross-source set, for ``kinds``
    of query (no oracle); each summary is printed as it comes."""
    bank = load_audio_bank(checkout / "data/audio_bank")
    queries = QueryBank.load(checkout / "data/query_bank.pt")
    result: dict[str, object] = {}
    for name, (set_bank, pairs) in test_and_cross_source_sets(checkout, bank).items():
        _, before = evaluate_pairs(separator=baseline, pairs=pairs, bank=set_bank, queries=queries, kinds=kinds, oracle=False)
        for variant, separator in variants.items():
            _, after = evaluate_pairs(separator=separator, pairs=pairs, bank=set_bank, queries=queries, kinds=kinds, oracle=False)
            result[f"{name} {variant}"] = summary = paired_summary(before, after)
            for corpus, by_kind in summary.items():
                print(name, variant, corpus, {k: f"{v['baseline']:.2f} -> {v['new']:.2f} ({v['delta']:+.2f} ± {v['delta_se']:.2f})"
                                              for k, v in by_kind.items()}, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="checkout of the baseline run")
    parser.add_argument("--new", type=Path, default=Path("."), help="checkout of the new run")
    parser.add_argument("--model", type=Path, default=Path("models/separator_sup.pt"), help="model file inside each checkout")
    parser.add_argument("--new-model", type=Path, help="the new checkout's model file, if not --model")
    parser.add_argument("--cross-source", type=Path, help="also compare on the cross-source set in this directory of each checkout")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/paired_delta.json"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    new_model = args.new_model or args.model
    pairs = shared_pairs(args.baseline, args.new)
    summary = paired_summary(score(args.baseline, pairs, args.model), score(args.new, pairs, new_model))
    result = {"baseline": str(args.baseline), "new": str(args.new), "model": str(args.model), "new_model": str(new_model),
              "pairs": int(len(pairs)), "si_sdri_by_corpus": summary}
    if args.cross_source is not None:
        before, after = score(args.baseline, None, args.model, args.cross_source), score(args.new, None, new_model, args.cross_source)
        if not before["pair_id"].equals(after["pair_id"]) or not before["mixture_si_sdr"].equals(after["mixture_si_sdr"]):
            raise SystemExit(f"the cross-source pairs of {args.baseline} and {args.new} differ")
        result["cross_source_by_corpus"] = paired_summary(before, after)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name in ("si_sdri_by_corpus", "cross_source_by_corpus"):
        for corpus, kinds in result.get(name, {}).items():
            print(name, corpus, {kind: f"{v['delta']:+.2f} ± {v['delta_se']:.2f} (n={v['n']})" for kind, v in kinds.items()})


if __name__ == "__main__":
    main()
