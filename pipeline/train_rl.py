"""DVC stage ``train_rl`` (params ``audio``, ``rl``): MARS fine-tuning of models/separator_sup.pt.

    python pipeline/train_rl.py                      # one process
    torchrun --nproc_per_node 2 pipeline/train_rl.py # DDP (gloo on CPU, NCCL on GPU)

A run killed mid-way resumes from ``--run-dir``/last.pt when started again with the same params.
"""

from pathlib import Path

from marssep_core.config import AudioConfig, load_section
from marssep_core.launch import finish_process, start_process, training_parser
from marssep_core.paths import paths_from
from marssep_core.rl.stage import RLConfig, RLPaths, run_rl_stage


def main() -> None:
    parser = training_parser(__doc__, "train_rl")
    parser.add_argument("--init", type=Path, default=Path("models/separator_sup.pt"))
    parser.add_argument("--judge", type=Path, default=Path("models/judge.pt"))
    parser.add_argument("--out", type=Path, default=Path("models/separator_rl.pt"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/rl.json"))
    parser.add_argument("--history", type=Path, default=Path("metrics/rl_history.csv"))
    args = parser.parse_args()
    start_process(args.threads)
    finish_process(run_rl_stage(cfg=load_section(RLConfig, "rl", args.params), audio=load_section(AudioConfig, "audio", args.params),
                                paths=paths_from(RLPaths, args)))


if __name__ == "__main__":
    main()
