"""Test pairs whose target or interferer crop is silence, and the evaluation means without them.

The test-pair recipe draws a crop offset uniformly inside each clip; a clip that is mostly
silence (e.g. one howl then seconds of digital silence) can give a crop with no sound at all. The
"mixture" is then a single source: SI-SDRi is undefined (the mixture's SI-SDR is ~+100 dB when the
interferer is silent, so any processing scores about -100 dB; a silent target gives nonsense the
other way), and a handful of such pairs dominate a corpus mean. This lists them (crop peak under
``--floor``) and recomputes ``metrics/eval_pairs.csv``'s SI-SDRi means over the other pairs. The
``clean`` stage now places every crop over sound (``clean.test_pairs.min_active_seconds``); the
result also counts the silent pairs the uniform draw alone would give on the same clips
(``uniform_recipe_silent_pairs``: the same recipe with ``min_active_seconds=0``).

    python benchmarks/silent_crops.py   # -> benchmarks/results/silent_crops.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from marssep_core.audio.signal import mean_and_stderr
from marssep_core.config import CleanConfig, PrepareAudioConfig, load_section
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.data.test_pairs import make_test_pairs


def silent_pairs(pairs: pd.DataFrame, bank_dir: Path, floor: float) -> pd.DataFrame:
    """Per pair: the peak of the target and interferer crops and ``silent`` (either under ``floor``)."""
    bank = load_audio_bank(bank_dir)
    rate = bank.sample_rate
    rows = []
    for pair in pairs.itertuples(index=False):
        length = int(round(float(pair.crop_seconds) * rate))
        peaks = {}
        for role in ("target", "interferer"):
            crop = bank.crop(getattr(pair, f"{role}_clip"), length, int(round(getattr(pair, f"{role}_offset_s") * rate)))
            peaks[f"{role}_peak"] = float(np.abs(crop).max())
        rows.append({"pair_id": pair.pair_id, "corpus": pair.corpus, "target_clip": pair.target_clip,
                     "interferer_clip": pair.interferer_clip, **peaks})
    table = pd.DataFrame(rows)
    table["silent"] = (table["target_peak"] < floor) | (table["interferer_peak"] < floor)
    return table


def uniform_recipe_pairs(clean_dir: Path, raw_dir: Path, bank_dir: Path, params: Path) -> pd.DataFrame:
    """The test pairs the recipe draws on the same clips without placing crops over sound."""
    cfg = load_section(CleanConfig, "clean", params).test_pairs
    clean = pd.read_parquet(clean_dir / "clips.parquet")
    classes = pd.read_csv(raw_dir / "classes.csv", keep_default_na=False)
    images = pd.read_csv(raw_dir / "images.csv", keep_default_na=False)
    return make_test_pairs(clean, classes, images, dataclasses.replace(cfg, min_active_seconds=0.0),
                           audio=load_audio_bank(bank_dir).clip_audio,
                           max_seconds=load_section(PrepareAudioConfig, "prepare_audio", params).max_seconds)


def means(per_pair: pd.DataFrame, keep: pd.Series) -> dict[str, dict[str, dict[str, float]]]:
    """``{corpus: {system/modality: {si_sdri, se, n}}}`` over rows where ``keep``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    rows = per_pair[keep & per_pair["error"].isna()]
    for corpus in ["all", *sorted(rows["corpus"].unique())]:
        part = rows if corpus == "all" else rows[rows["corpus"] == corpus]
        out[corpus] = {}
        for (system, modality), group in part.groupby(["system", "modality"]):
            if system == "mixture":
                continue
            mean, stderr = mean_and_stderr(group["si_sdri"].to_numpy())
            out[corpus][f"{system}/{modality}"] = {"si_sdri": round(mean, 3), "se": round(stderr, 3), "n": int(len(group))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, default=Path("data/clean/test_pairs.csv"))
    parser.add_argument("--bank", type=Path, default=Path("data/audio_bank"))
    parser.add_argument("--clean", type=Path, default=Path("data/clean"))
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--eval-pairs", type=Path, default=Path("metrics/eval_pairs.csv"))
    parser.add_argument("--floor", type=float, default=1e-4, help="crop peak under which a source counts as silent")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/silent_crops.json"))
    args = parser.parse_args()
    pairs = pd.read_csv(args.pairs, keep_default_na=False)
    flags = silent_pairs(pairs, args.bank, args.floor)
    per_pair = pd.read_csv(args.eval_pairs).merge(flags[["pair_id", "silent"]], on="pair_id", how="left")
    silent = flags[flags["silent"]]
    result = {
        "floor": args.floor,
        "silent_pairs": int(len(silent)),
        "silent_by_clip": {
            role: silent[f"{role}_clip"][silent[f"{role}_peak"] < args.floor].value_counts().to_dict() for role in ("target", "interferer")
        },
        "uniform_recipe_silent_pairs": int(silent_pairs(uniform_recipe_pairs(args.clean, args.raw, args.bank, args.params),
                                                         args.bank, args.floor)["silent"].sum()),
        "all_pairs": means(per_pair, pd.Series(True, index=per_pair.index)),
        "without_silent": means(per_pair, ~per_pair["silent"].astype(bool)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(silent)} of {len(pairs)} pairs have a silent crop: {result['silent_by_clip']}; "
          f"the uniform crop draw would give {result['uniform_recipe_silent_pairs']}")
    for corpus in result["all_pairs"]:
        for key in ("supervised/text", "rl/text"):
            before, after = result["all_pairs"][corpus].get(key), result["without_silent"][corpus].get(key)
            if before and after:
                print(f"{corpus} {key}: {before['si_sdri']:.2f} ± {before['se']:.2f} (n={before['n']}) -> "
                      f"{after['si_sdri']:.2f} ± {after['se']:.2f} (n={after['n']})")


if __name__ == "__main__":
    main()
