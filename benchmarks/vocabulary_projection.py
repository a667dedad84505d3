"""Typed text queries projected onto the class texts the separator trained on: does it pay?

The separator's training text queries are the 39 class-text embeddings; a typed wording ("dog
only") embeds near its class text but not on it, and separates 0.3-2 dB worse even when its
nearest class text is its own (``benchmarks/text_phrasing.py``). This scores, on the test and
cross-source pairs, each wording of ``text_phrasing`` as typed and projected onto the class
texts ``T (C, D)``:

- ``nearest``: the nearest class text when its cosine is at least ``--min-cosine`` (else the
  query as typed): the lookup ``marssep separate`` does (``nearest_vocabulary_text``);
- ``soft@tau``: ``normalize(softmax(q T^T / tau) T)``, a similarity-weighted mix of class texts.

Also (``reach``): how near their nearest class text the wordings of our classes land, against
texts of sounds the corpus lacks (``UNKNOWN_SOUNDS``): whether a cosine threshold can tell the two
apart. ``--variants`` with no value computes only that.

    python benchmarks/vocabulary_projection.py --out benchmarks/results/vocabulary_projection.json
    python benchmarks/vocabulary_projection.py --variants --out benchmarks/results/vocabulary_reach.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from paired_delta import test_and_cross_source_sets  # benchmarks/, the script's folder
from text_phrasing import HELD_OUT_TEMPLATES, REFERENCE_TEMPLATES, score_wording, wording_queries

from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.encoders.api import VOCABULARY_MIN_COSINE, QueryEncoder, nearest_vocabulary_text
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import load_separator


# texts of sounds no class of the default corpus is
UNKNOWN_SOUNDS = ("a car engine", "a police siren", "thunder", "people applauding", "a train passing", "a helicopter",
                  "typing on a keyboard", "a baby crying", "footsteps", "wind blowing", "a vacuum cleaner", "fireworks",
                  "glass breaking", "an airplane", "a motorcycle", "church bells ringing", "a lawn mower", "birds and traffic",
                  "a door slamming", "snoring")


def reach(encoder: QueryEncoder, queries: QueryBank) -> dict:
    """Nearest-class-text cosines of our classes' wordings (bare name and held-out) and of ``UNKNOWN_SOUNDS``."""
    ours = torch.cat([wording_queries(encoder, queries, t) for t in ("{name}", *HELD_OUT_TEMPLATES)]) @ queries.text.T
    unknown = encoder.text(list(UNKNOWN_SOUNDS)).cpu() @ queries.text.T
    summary = {}
    for name, best in (("our_classes_wordings", ours.max(1).values), ("unknown_sounds", unknown.max(1).values)):
        summary[name] = {"n": len(best), "min": round(float(best.min()), 3), "q05": round(float(best.quantile(0.05)), 3),
                         "median": round(float(best.median()), 3), "max": round(float(best.max()), 3)}
    summary["unknown_sounds_nearest"] = {t: queries.texts[int(i)] for t, i in zip(UNKNOWN_SOUNDS, unknown.argmax(1))}
    return summary


def project(embedded: torch.Tensor, vocabulary: torch.Tensor, variant: str, min_cosine: float) -> torch.Tensor:
    """``embedded (B, D)`` -> ``(B, D)`` under ``variant`` (``typed``, ``nearest`` or ``soft@tau``)."""
    if variant == "typed":
        return embedded
    if variant == "nearest":  # what serving does (marssep_core/encoders/api.py)
        return nearest_vocabulary_text(embedded, vocabulary, min_cosine)
    tau = float(variant.split("@")[1])
    return F.normalize(torch.softmax(embedded @ vocabulary.T / tau, dim=1) @ vocabulary, dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", type=Path, default=Path("."))
    parser.add_argument("--model", type=Path, default=Path("models/separator_sup.pt"))
    parser.add_argument("--variants", nargs="*", default=["typed", "nearest", "soft@0.02"])
    parser.add_argument("--min-cosine", type=float, default=VOCABULARY_MIN_COSINE)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/vocabulary_projection.json"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    queries = QueryBank.load(args.checkout / "data/query_bank.pt")
    encoder = QueryEncoder.from_checkpoint(args.checkout / queries.encoder["path"])
    separator, _ = load_separator(args.checkout / args.model)
    sets = test_and_cross_source_sets(args.checkout, load_audio_bank(args.checkout / "data/audio_bank"))
    result = {"model": str(args.model), "query_bank_encoder": queries.encoder, "min_cosine": args.min_cosine,
              "reach": reach(encoder, queries), "variants": {}}
    print("reach", json.dumps(result["reach"]), flush=True)
    for variant in args.variants:
        rows = []
        for template in (*REFERENCE_TEMPLATES, *HELD_OUT_TEMPLATES):
            embedded = project(wording_queries(encoder, queries, template), queries.text, variant, args.min_cosine)
            rows.append(score_wording(template=template, embedded=embedded, queries=queries, separator=separator, sets=sets))
            print(variant, json.dumps(rows[-1]), flush=True)
        held_out = pd.json_normalize([r for r in rows if r["template"] in HELD_OUT_TEMPLATES]).mean(numeric_only=True).round(3)
        result["variants"][variant] = {"wordings": rows, "held_out_mean": held_out.to_dict()}
        print(variant, "held-out mean", json.dumps(held_out.to_dict()), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
