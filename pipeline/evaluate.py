"""DVC stage ``evaluate`` (params ``audio``, ``evaluate``, ``clean.test_pairs``): systems x query
modalities on the fixed test pairs (and SI-SDRi on the cross-source set's pairs) -> metrics/eval.json, metrics/eval_pairs.csv, plots, reports/eval.md.

    python pipeline/evaluate.py --model supervised=models/separator_sup.pt [--model rl=models/separator_rl.pt]

Exit status 1 when more evaluation units failed than ``evaluate.max_error_rate`` allows (the
tables, with every error, are written first).
"""

import argparse
import sys
from pathlib import Path

import torch

from marssep_core.config import AudioConfig, CleanConfig, load_section
from marssep_core.evaluation.runner import EvaluateConfig, EvaluationError
from marssep_core.evaluation.stage import EvaluatePaths, run_evaluate_stage
from marssep_core.logging_setup import setup_logging
from marssep_core.paths import paths_from


def _model(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=_model, action="append", default=[], help="NAME=PATH of a separator model file")
    parser.add_argument("--pairs", type=Path, default=Path("data/clean/test_pairs.csv"))
    parser.add_argument("--bank", type=Path, default=Path("data/audio_bank"))
    parser.add_argument("--queries", type=Path, default=Path("data/query_bank.pt"))
    parser.add_argument("--judge", type=Path, default=Path("models/judge.pt"))
    parser.add_argument("--judge-metrics", type=Path, default=Path("metrics/judge.json"))
    parser.add_argument("--out", type=Path, default=Path("metrics"), help="folder of eval.json and the tables")
    parser.add_argument("--report", type=Path, default=Path("reports"), help="folder of eval.md, figures/ and eval.html")
    parser.add_argument("--raw", type=Path, default=Path("data/raw"), help="raw corpus (query pictures for eval.html)")
    parser.add_argument("--cross-source", type=Path, default=Path("data/cross_source"),
                        help="the cross-source set: every model's SI-SDRi on its pairs")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads of the main process")
    args = parser.parse_args(argv)
    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        metrics = run_evaluate_stage(cfg=load_section(EvaluateConfig, "evaluate", args.params),
                                     audio=load_section(AudioConfig, "audio", args.params),
                                     paths=paths_from(EvaluatePaths, args), models=dict(args.model),
                                     pairs_cfg=load_section(CleanConfig, "clean", args.params).test_pairs)
    except EvaluationError as err:
        print(f"evaluate: {err}", file=sys.stderr)
        return 1
    keys = [k for k in metrics if k.startswith("all.") and k.endswith((".sdr", ".si_sdri", ".clap_t"))]
    print("\n".join(f"{k} = {metrics[k]}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
