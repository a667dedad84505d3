"""DVC stage ``train_supervised`` (params ``audio``, ``train_supervised``, ``clean.test_pairs``).

    python pipeline/train_supervised.py                      # one process
    torchrun --nproc_per_node 2 pipeline/train_supervised.py # DDP (gloo on CPU, NCCL on GPU)

A run killed mid-way resumes from ``--run-dir``/last.pt when started again with the same params.
"""

from pathlib import Path

from marssep_core.config import AudioConfig, CleanConfig, load_section
from marssep_core.launch import finish_process, start_process, training_parser
from marssep_core.paths import paths_from
from marssep_core.separation.stages import SupervisedConfig, SupervisedPaths, run_supervised_stage


def main() -> None:
    parser = training_parser(__doc__, "train_supervised")
    parser.add_argument("--pairs", type=Path, default=Path("data/clean/test_pairs.csv"))
    parser.add_argument("--out", type=Path, default=Path("models/separator_sup.pt"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/supervised.json"))
    parser.add_argument("--history", type=Path, default=Path("metrics/supervised_history.csv"))
    parser.add_argument("--cross-source", type=Path, default=Path("data/cross_source"),
                        help="the cross-source set, scored next to the test pairs")
    args = parser.parse_args()
    start_process(args.threads)
    finish_process(run_supervised_stage(cfg=load_section(SupervisedConfig, "train_supervised", args.params),
                                        audio=load_section(AudioConfig, "audio", args.params),
                                        paths=paths_from(SupervisedPaths, args),
                                        pairs_cfg=load_section(CleanConfig, "clean", args.params).test_pairs))


if __name__ == "__main__":
    main()
