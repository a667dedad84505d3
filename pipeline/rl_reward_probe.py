"""DVC stage ``rl_reward_probe`` (params ``rl``, ``rl_probe``): does the RL reward track separation?

Groups of masks drawn from the supervised separator's policy on the validation pairs, scored by
the RL reward, SI-SDR and the independent judge (``marssep_core/rl/probe.py``; docs/rl.md).

    python pipeline/rl_reward_probe.py --model models/separator_sup.pt --metrics metrics/rl_reward_probe.json
"""

import argparse
import json
from pathlib import Path

from marssep_core.config import load_section
from marssep_core.logging_setup import setup_logging
from marssep_core.paths import add_path_arguments
from marssep_core.rl.probe import ProbeConfig, run_probe_stage
from marssep_core.rl.stage import RLConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/separator_sup.pt"))
    add_path_arguments(parser, "judge", "raw", "bank", "queries", "params")
    parser.add_argument("--metrics", type=Path, default=Path("metrics/rl_reward_probe.json"))
    args = parser.parse_args()
    setup_logging()
    report = run_probe_stage(cfg=load_section(ProbeConfig, "rl_probe", args.params), rl=load_section(RLConfig, "rl", args.params),
                             raw_dir=args.raw, bank_dir=args.bank, queries_path=args.queries, model=args.model,
                             judge_path=args.judge, out_metrics=args.metrics)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
