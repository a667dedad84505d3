"""Text queries worded as a user might type them, against the corpus's class texts.

The evaluation's text query is the corpus's class text ("a dog barking"). This embeds other
wordings of every class with the checkout's encoder ("dog only", "a recording of dog", ...),
none of them a template the encoder's training draws (``marssep_core/encoders/phrasing.py``;
the bare name "dog" is one, reported apart), and reports per wording:

- retrieval: the share of classes whose wording is nearest (cosine) to its own class text among
  the 39, and the mean cosine to it, also over the classes without a picture apart
  (``*_pictureless``: no vision pair trains their text in pretraining);
- separation: text SI-SDRi of the separator on the test pairs and the cross-source pairs with
  the wording as the query, per corpus and over the pairs whose target has no picture.

    python benchmarks/text_phrasing.py --out benchmarks/results/text_phrasing.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pandas as pd
import torch
from paired_delta import test_and_cross_source_sets  # benchmarks/, the script's folder

from marssep_core.data.audio_bank import AudioBank, load_audio_bank
from marssep_core.encoders.api import QueryEncoder
from marssep_core.encoders.phrasing import class_name
from marssep_core.separation.evaluate import corpus_means, evaluate_pairs
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import Separator, load_separator

# wordings a user might type; none is drawn in training (tests/test_phrasing.py checks it)
HELD_OUT_TEMPLATES = ("the noise of {name}", "a recording of {name}", "isolate the {name}", "{name} only",
                      "extract {name} from the mix")
REFERENCE_TEMPLATES = ("{text}", "{name}")  # the evaluation's query, and the bare name (a training wording)


def wording_queries(encoder: QueryEncoder, queries: QueryBank, template: str) -> torch.Tensor:
    """``(C, D)`` embeddings of ``template`` filled per class, in the query bank's class order."""
    phrases = [template.format(text=text, name=class_name(label)) for label, text in zip(queries.classes, queries.texts)]
    return encoder.text(phrases).cpu()


def score_wording(template: str, embedded: torch.Tensor, queries: QueryBank, separator: Separator,
                  sets: dict[str, tuple[AudioBank, pd.DataFrame]]) -> dict:
    """Retrieval and per-corpus text SI-SDRi of one wording's queries ``embedded (C, D)``."""
    similarity = embedded @ queries.text.T
    own = torch.arange(len(queries.classes))
    hits, cosines = (similarity.argmax(1) == own).float(), similarity[own, own]
    no_picture = [label for label in queries.classes if not queries.picture_rows(label)]
    pictureless = torch.tensor([label in no_picture for label in queries.classes])
    result = {"template": template, "top1": round(float(hits.mean()), 3), "cosine_to_class_text": round(float(cosines.mean()), 3),
              "top1_pictureless": round(float(hits[pictureless].mean()), 3),
              "cosine_pictureless": round(float(cosines[pictureless].mean()), 3)}
    worded = dataclasses.replace(queries, text=embedded)
    for name, (bank, pairs) in sets.items():
        summary, table = evaluate_pairs(separator=separator, pairs=pairs, bank=bank, queries=worded, kinds=("text",), oracle=False)
        result[name] = {"all": summary["text"]["si_sdri"], **{c: v["text"] for c, v in corpus_means(table).items()},
                        "pictureless": round(float(table.loc[table["target_class"].isin(no_picture), "si_sdri_text"].mean()), 3)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", type=Path, default=Path("."))
    parser.add_argument("--model", type=Path, default=Path("models/separator_sup.pt"))
    parser.add_argument("--encoder", type=Path, help="encoder checkpoint (default: the one the query bank was made with)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/text_phrasing.json"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    queries = QueryBank.load(args.checkout / "data/query_bank.pt")
    encoder = QueryEncoder.from_checkpoint(args.encoder or args.checkout / queries.encoder["path"])
    separator, _ = load_separator(args.checkout / args.model)
    sets = test_and_cross_source_sets(args.checkout, load_audio_bank(args.checkout / "data/audio_bank"))
    rows = [score_wording(template=t, embedded=wording_queries(encoder, queries, t), queries=queries, separator=separator, sets=sets)
            for t in (*REFERENCE_TEMPLATES, *HELD_OUT_TEMPLATES)]
    held_out = pd.json_normalize([r for r in rows if r["template"] in HELD_OUT_TEMPLATES]).mean(numeric_only=True).round(3)
    result = {"model": str(args.model), "query_bank_encoder": queries.encoder, "wordings": rows,
              "held_out_mean": held_out.to_dict()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(json.dumps(row))
    print("held-out mean", json.dumps(result["held_out_mean"]))


if __name__ == "__main__":
    main()
