"""Benchmark the evaluation: 300 test pairs x 4 query modalities x 4 systems on the CPU.

Systems: ``mixture``, ``supervised`` (models/separator_sup.pt), ``rl`` (models/separator_rl.pt,
or the supervised model again under that name until the RL stage has run) and ``oracle_irm``. An
``rl`` model with the supervised weights (the stand-in, or RL's guard keeping the start) is scored
once and its rows copied (``runner.duplicate_models``), so the timing then covers three systems'
work; ``rl_model`` and ``rl_copied`` in the results say which. Pairs: the first 150 of each corpus in data/clean/test_pairs.csv. Each
setting runs in a fresh subprocess with ``workers`` BSS Eval processes; it reports wall time,
units and units per second. Needs the outputs of ``dvc repro evaluate``'s dependencies.
Results go to ``benchmarks/results/evaluate_cpu.json``.

    python benchmarks/bench_evaluate.py                 # workers 1 and 2
    python benchmarks/bench_evaluate.py --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(workers: int, pairs_per_corpus: int) -> dict:
    import pandas as pd
    import torch

    from marssep_core.config import AudioConfig, load_section
    from marssep_core.data.audio_bank import load_audio_bank
    from marssep_core.evaluation.judge import load_judge
    from marssep_core.evaluation.runner import EvaluateConfig, duplicate_models, evaluate_systems
    from marssep_core.separation.queries import QueryBank
    from marssep_core.separation.separator import load_separator

    torch.set_num_threads(2)
    pairs = pd.read_csv(ROOT / "data/clean/test_pairs.csv", keep_default_na=False)
    pairs = pairs.groupby("corpus", sort=True).head(pairs_per_corpus).reset_index(drop=True)
    rl_path = ROOT / "models/separator_rl.pt"
    models = {"supervised": ROOT / "models/separator_sup.pt", "rl": rl_path if rl_path.is_file() else ROOT / "models/separator_sup.pt"}
    started = time.perf_counter()
    bank = load_audio_bank(ROOT / "data/audio_bank")
    queries = QueryBank.load(ROOT / "data/query_bank.pt")
    judge, _ = load_judge(ROOT / "models/judge.pt")
    separators = {name: load_separator(path)[0] for name, path in models.items()}
    cfg = EvaluateConfig(workers=workers, figures_per_corpus=0)
    result = evaluate_systems(
        pairs=pairs,
        bank=bank,
        queries=queries,
        separators=separators,
        judge=judge,
        audio=load_section(AudioConfig, "audio", ROOT / "params.yaml"),
        cfg=cfg,
    )
    wall = time.perf_counter() - started
    return {
        "workers": workers,
        "pairs": len(pairs),
        "systems": 4,
        "modalities": len(cfg.modalities),
        "units": len(result.table),
        "failed_units": int((result.table["error"] != "").sum()),
        "wall_s": round(wall, 1),
        "units_per_s": round(len(result.table) / wall, 2),
        "rl_model": "separator_rl.pt" if rl_path.is_file() else "separator_sup.pt (stand-in)",
        "rl_copied": "rl" in duplicate_models(separators),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--pairs-per-corpus", type=int, default=150)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/evaluate_cpu.json")
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.pairs_per_corpus)))
        return
    runs = []
    for workers in args.workers:
        proc = subprocess.run([sys.executable, __file__, "--child", str(workers), "--pairs-per-corpus", str(args.pairs_per_corpus)],
                              capture_output=True, text=True, check=True, cwd=ROOT)
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(runs[-1])
    result = {"benchmark": "evaluate", "command": "python benchmarks/bench_evaluate.py", "cpu_count": os.cpu_count(),
              "machine": platform.processor() or platform.machine(), "python": platform.python_version(), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
