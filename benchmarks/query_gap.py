"""How far the audio queries of unseen recordings sit from their class, next to the training ones.

For every clip of the query bank: the cosine between its audio embedding and its class text, and
whether the nearest class text is its own, averaged per corpus and split. Training queries are
embeddings of train clips, which the encoder also trained on; test audio queries are not. Also,
per corpus, how many recordings the test pairs' audio queries come from (the figure's effective
sample size), and the supervised model's audio- and text-query SI-SDRi on the test pairs
(``metrics/eval_pairs.csv``) split by whether the audio query's nearest class text is the target
class (how much of the audio-query figure the encoder decides; ``--encoder-only`` leaves that
part out, for a query bank whose separator was not evaluated). Results go to
``benchmarks/results/query_gap.json``.

    python benchmarks/query_gap.py [--queries data/query_bank.pt] [--bank data/audio_bank] \
        [--pairs data/clean/test_pairs.csv] [--eval-pairs metrics/eval_pairs.csv | --encoder-only] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from marssep_core.separation.queries import QueryBank

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=Path, default=ROOT / "data" / "query_bank.pt")
    parser.add_argument("--bank", type=Path, default=ROOT / "data" / "audio_bank")
    parser.add_argument("--pairs", type=Path, default=ROOT / "data" / "clean" / "test_pairs.csv")
    parser.add_argument("--eval-pairs", type=Path, default=ROOT / "metrics" / "eval_pairs.csv")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "query_gap.json")
    parser.add_argument("--encoder-only", action="store_true",
                        help="skip the separator's scores (a query bank whose model was not evaluated, e.g. an encoder lever's)")
    args = parser.parse_args()
    queries = QueryBank.load(args.queries)
    clips = pd.read_parquet(args.bank / "index.parquet")
    clips = clips[clips["clip_id"].isin(queries.clip_ids)]
    audio, text = queries.audio_of(clips["clip_id"].tolist()), queries.text_of(clips["class"].tolist())
    clips = clips.assign(cosine_to_class_text=(audio * text).sum(dim=1).numpy(),
                         nearest_text_is_class=nearest_text_is(queries, clips["clip_id"], clips["class"]))
    table = clips.groupby(["corpus", "split"])[["cosine_to_class_text", "nearest_text_is_class"]].mean().round(3)
    result = {f"{corpus}.{split}": {k: round(float(v), 3) for k, v in row.items()} | {"clips": int(((clips["corpus"] == corpus) & (clips["split"] == split)).sum())}
              for (corpus, split), row in table.iterrows()}
    pairs = pd.read_csv(args.pairs, keep_default_na=False)
    per_class = pairs.groupby(["corpus", "target_class"])["query_audio_clip"].nunique()
    query_recordings = {
        corpus: {"pairs": int((pairs["corpus"] == corpus).sum()), "recordings": int(group["query_audio_clip"].nunique()),
                 "per_class_mean": round(float(per_class[corpus].mean()), 2), "per_class_min": int(per_class[corpus].min()),
                 "classes_with_one": int((per_class[corpus] == 1).sum())}
        for corpus, group in pairs.groupby("corpus")
    }
    pairs = pairs.assign(query_nearest_target=nearest_text_is(queries, pairs["query_audio_clip"], pairs["target_class"]))
    pairs_right = pairs.groupby("corpus")["query_nearest_target"].mean().round(3).to_dict()
    by_query = None if args.encoder_only else audio_queries_by_nearest_text(pairs, pd.read_csv(args.eval_pairs, keep_default_na=False))
    args.out.write_text(json.dumps({"encoder": queries.encoder, "by_corpus_split": result,
                                    "test_audio_query_recordings": query_recordings,
                                    "test_pairs_audio_query_nearest_target": pairs_right,
                                    "supervised_si_sdri_by_audio_query": by_query}, indent=2) + "\n")
    print(table.to_string())
    print(json.dumps(query_recordings, indent=1))
    print(json.dumps({"test_pairs_audio_query_nearest_target": pairs_right, "by_query": by_query}, indent=1))


def nearest_text_is(queries: QueryBank, clip_ids: pd.Series, labels: pd.Series) -> list[bool]:
    """Per clip: is the class text nearest its audio embedding the class in ``labels``?"""
    nearest = (queries.audio_of(clip_ids.tolist()) @ queries.text.T).argmax(dim=1).tolist()
    return [queries.classes[i] == label for i, label in zip(nearest, labels)]


def audio_queries_by_nearest_text(pairs: pd.DataFrame, scores: pd.DataFrame) -> dict:
    """Per corpus, the supervised model's mean audio- and text-query SI-SDRi on the pairs whose
    audio query's nearest class text is (or is not) the target class (``pairs``'
    ``query_nearest_target`` column)."""
    supervised = scores[scores["system"] == "supervised"].pivot(index="pair_id", columns="modality", values="si_sdri")
    joined = pairs.join(supervised[["audio", "text"]], on="pair_id")
    return {
        f"{corpus}.{'nearest_target' if hit else 'nearest_other'}": {
            "pairs": len(group), "audio": round(float(group["audio"].mean()), 2), "text": round(float(group["text"].mean()), 2)}
        for (corpus, hit), group in joined.groupby(["corpus", "query_nearest_target"])
    }


if __name__ == "__main__":
    main()
