"""Paired difference of one system between two evaluation runs on the same test pairs.

When the test pairs are unchanged (same ``data/clean/test_pairs.csv``), the per-pair rows of two
runs' ``metrics/eval_pairs.csv`` can be subtracted directly: mean ± s.e. of new minus old per
corpus and query modality, for SI-SDRi and the judge's CLAP_t. The old file comes from the
previous commit's DVC cache, e.g.

    git show <old>:dvc.lock | grep -A2 'path: metrics/eval_pairs.csv'   # its md5, then:
    cp .dvc/cache/files/md5/<md5[:2]>/<md5[2:]> /tmp/old_eval_pairs.csv
    python benchmarks/paired_eval_runs.py --old /tmp/old_eval_pairs.csv --new metrics/eval_pairs.csv \
        --out benchmarks/results/paired_eval_runs.json

When only one corpus's pairs stayed the same (a corpus change re-draws the other's), name it with
``--corpus instruments``: pairs are matched by id, and a re-drawn pair with the same id is a
different mixture. The script refuses a corpus whose pairs' target and interferer classes differ.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

KEY = ["pair_id", "corpus", "modality"]


def paired(old: pd.DataFrame, new: pd.DataFrame, system: str, column: str) -> dict[str, dict[str, float]]:
    def pick(frame: pd.DataFrame) -> pd.Series:
        return frame[frame["system"] == system].set_index(KEY)[column]

    delta = (pick(new) - pick(old)).dropna().rename("delta").reset_index()
    return {f"{corpus}.{modality}": {"mean": round(float(g.delta.mean()), 3),
                                     "sem": round(float(g.delta.std(ddof=1) / np.sqrt(len(g))), 3), "n": len(g)}
            for (corpus, modality), g in delta.groupby(["corpus", "modality"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--new", type=Path, required=True)
    parser.add_argument("--system", default="supervised")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--corpus", action="append", help="only these corpora (repeatable); default: all")
    args = parser.parse_args()
    old, new = pd.read_csv(args.old, keep_default_na=False), pd.read_csv(args.new, keep_default_na=False)
    if args.corpus:
        old, new = old[old["corpus"].isin(args.corpus)], new[new["corpus"].isin(args.corpus)]
    same = old.merge(new, on=KEY + ["system"], suffixes=("_old", "_new"))
    changed = same[(same["target_class_old"] != same["target_class_new"])
                   | (same["interferer_class_old"] != same["interferer_class_new"])]["corpus"].unique()
    if len(changed):
        raise SystemExit(f"the test pairs of {sorted(changed)} differ between {args.old} and {args.new}; "
                         "pass --corpus with the corpora whose pairs stayed the same")
    result = {"system": args.system, **{column: paired(old, new, args.system, column) for column in ("si_sdri", "clap_t")}}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
