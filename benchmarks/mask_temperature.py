"""SI-SDRi of one trained separator at each mask temperature, on the validation pairs (where
``train_supervised`` picks it), the test pairs and the cross-source set.

The mask is ``sigmoid(logits / T)``; ``train_supervised`` keeps the ``T`` of
``mask_temperatures`` with the best validation score (``temperature_selection``: the text
SI-SDRi, or the mean of the text and audio ones). This shows what each ``T`` does per corpus and
query kind, and whether the validation choice carries over to the test pairs and to recordings
of packages and players no stage trains on. ``--chosen-only`` scores the test and cross-source
pairs at ``T`` = 1 and at what each selection picks.

    python benchmarks/mask_temperature.py   # -> benchmarks/results/mask_temperature.json
    python benchmarks/mask_temperature.py --model <another run>/separator_sup.pt --chosen-only --out <json>
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pandas as pd
import torch
from paired_delta import paired_summary, test_and_cross_source_sets  # benchmarks/, the script's folder

from marssep_core.config import load_section
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.separation.evaluate import corpus_means, evaluate_pairs
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import load_separator
from marssep_core.separation.stages import TEMPERATURE_SELECTIONS, SupervisedConfig, select_temperature, validation_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/separator_sup.pt"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/mask_temperature.json"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chosen-only", action="store_true",
                        help="test and cross-source pairs at T = 1 and the validation's choices only (all T on validation)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    separator, _ = load_separator(args.model)
    bank, queries = load_audio_bank(Path("data/audio_bank")), QueryBank.load(Path("data/query_bank.pt"))
    cfg = load_section(SupervisedConfig, "train_supervised", args.params)
    sets = {"val": (bank, validation_pairs(bank, Path("data/raw"), cfg.validation)), **test_and_cross_source_sets(Path("."), bank)}
    kept = separator.mask_net.cfg.temperature

    def scored(temperature: float, name: str) -> pd.DataFrame:
        separator.mask_net.cfg = dataclasses.replace(separator.mask_net.cfg, temperature=float(temperature))
        set_bank, pairs = sets[name]
        return evaluate_pairs(separator=separator, pairs=pairs, bank=set_bank, queries=queries, oracle=False,
                              kinds=("text", "audio"))[1]

    started = time.perf_counter()
    val = {float(t): scored(t, "val") for t in cfg.mask_temperatures}
    val_seconds = round(time.perf_counter() - started, 1)  # the work of the stage's calibration
    means = {t: {column: float(table[column].mean()) for column in ("si_sdri_text", "si_sdri_audio")} for t, table in val.items()}
    picks = {selection: select_temperature(means, selection) for selection in TEMPERATURE_SELECTIONS}
    chosen = picks[cfg.temperature_selection]  # what calibrate_temperature picks with these params
    shown = sorted({1.0, *picks.values()}) if args.chosen_only else list(val)
    results = {}
    for name in sets:
        tables = {t: val[t] if name == "val" else scored(t, name) for t in (list(val) if name == "val" else shown)}
        results[name] = {str(t): {"all": {k: round(float(table[f"si_sdri_{k}"].mean()), 3) for k in ("text", "audio")},
                                  **corpus_means(table)} for t, table in tables.items()}
        if chosen != 1.0:
            results[name]["paired_chosen_minus_1"] = {
                corpus: {kind: [v["delta"], v["delta_se"]] for kind, v in kinds.items()}
                for corpus, kinds in paired_summary(tables[1.0], tables[chosen]).items()}
        print(name, json.dumps(results[name]), flush=True)
    args.out.write_text(json.dumps({"model": str(args.model), "kept_temperature": kept, "val_chosen_temperature": chosen,
                                    "val_chosen_by_selection": picks,
                                    "val_seconds": val_seconds, "threads": args.threads,
                                    "si_sdri": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
