"""``marssep separate``: files or a manifest of jobs in, separated audio + ``results.csv`` out.

    marssep separate mix.wav --text "a dog barking" --out separated/
    marssep separate --manifest jobs.csv --out separated/ [--backend onnx|torch] [--device auto|cpu|cuda]

Exit status: 0 every row separated or already done, 1 some rows failed (listed in
``results.csv`` and summarised), 2 nothing could start (model, bundle, manifest, device or
query problem), 130 interrupted (the row in progress leaves no output file).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from tqdm import tqdm

from marssep_core.serving.batch import BatchOptions, Job, ManifestError, read_manifest, run_batch
from marssep_core.serving.engine import BACKENDS
from marssep_core.serving.runtime import DEVICES, ProviderError
from marssep_core.torch_utils import CheckpointError

DEFAULT_MODELS = {"onnx": Path("models/onnx"), "torch": Path("models/separator_rl.pt")}
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")


def add_separate_parser(commands: argparse._SubParsersAction) -> None:
    sep = commands.add_parser("separate", help="extract the queried sound from mixtures (onnxruntime or PyTorch)")
    sep.add_argument("mixtures", nargs="*", type=Path, help="audio files (or use --manifest)")
    sep.add_argument("--manifest", type=Path, help="CSV with columns id, mixture, query_text, query_audio, query_image")
    sep.add_argument("--text", action="append", help="text query (repeat to average several)")
    sep.add_argument("--audio", action="append", type=Path, help="reference audio query")
    sep.add_argument("--image", action="append", type=Path, help="image query")
    sep.add_argument("--negative-text", action="append", help="a sound to steer away from")
    sep.add_argument("--negative-audio", action="append", type=Path)
    sep.add_argument("--negative-image", action="append", type=Path)
    sep.add_argument("--typed-text", action="store_true",
                     help="use text queries as typed (default: each is looked up among the model's class texts)")
    sep.add_argument("--backend", choices=BACKENDS, default="onnx", help="onnx (default) or torch")
    sep.add_argument("--model", type=Path, default=None,
                     help="ONNX bundle directory (default models/onnx) or, with --backend torch, a separator .pt "
                          "(default models/separator_rl.pt)")
    sep.add_argument("--encoder", type=Path, default=None, help="torch backend: query encoder (default: the model's)")
    sep.add_argument("-o", "--out", "--out-dir", dest="out", type=Path, default=Path("separated"))
    sep.add_argument("--device", choices=DEVICES, default="auto")
    sep.add_argument("--segment", type=float, default=10.0, help="seconds per window (overlap-add)")
    sep.add_argument("--overlap", type=float, default=0.25, help="window overlap fraction")
    sep.add_argument("--batch-size", type=int, default=1,
                     help="windows per forward pass (x channels); more is faster on onnxruntime but needs more memory")
    sep.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    sep.add_argument("--format", choices=("wav", "flac"), default="wav", help="output container")
    sep.add_argument("--subtype", choices=SUBTYPES, default=None, help="sample format (default: FLOAT for wav, PCM_24 for flac)")
    sep.add_argument("--relative-to", type=Path, default=None,
                     help="resolve relative paths in the manifest against this directory (default: the manifest's)")
    sep.add_argument("--input-root", type=Path, default=None, help="refuse inputs outside this directory")
    sep.add_argument("--overwrite", action="store_true", help="redo rows whose output already exists")
    sep.set_defaults(run=run_separate)


def _jobs_from_arguments(args: argparse.Namespace) -> list[Job]:
    return [
        Job(id=path.stem, mixture=path, text=args.text or [], audio=args.audio or [], image=args.image or [],
            negative_text=args.negative_text or [], negative_audio=args.negative_audio or [],
            negative_image=args.negative_image or [])
        for path in args.mixtures
    ]


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through the atomic writers, which delete their temporary file


def run_separate(args: argparse.Namespace) -> int:
    from marssep_core.serving.engine import load_engine

    if bool(args.manifest) == bool(args.mixtures):
        print("error: give mixture files or --manifest (not both)", file=sys.stderr)
        return 2
    if args.mixtures and not (args.text or args.audio or args.image):
        print("error: give a query: --text, --audio or --image", file=sys.stderr)
        return 2
    try:
        jobs = read_manifest(args.manifest, args.relative_to) if args.manifest else _jobs_from_arguments(args)
        model = args.model or DEFAULT_MODELS[args.backend]
        engine = load_engine(
            backend=args.backend,
            model=model,
            encoder=args.encoder,
            device=args.device,
            segment=args.segment,
            overlap=args.overlap,
            batch=args.batch_size,
            threads=args.threads,
            typed_text=args.typed_text,
        )
    except (ManifestError, CheckpointError, ProviderError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"backend {args.backend} ({model}), provider {engine.provider}", file=sys.stderr)
    subtype = args.subtype or ("FLOAT" if args.format == "wav" else "PCM_24")
    options = BatchOptions(out_dir=args.out, format=args.format, subtype=subtype, overwrite=args.overwrite, input_root=args.input_root)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        results = run_batch(engine, jobs, options, lambda rows: tqdm(rows, desc="separate", unit="file",
                                                                     disable=len(rows) < 2))
    except KeyboardInterrupt:
        print("interrupted: the row in progress left no output; re-run to continue", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    counts = results["status"].value_counts()
    for row in results[results["status"] == "failed"].itertuples():
        print(f"failed {row.id}: {row.error}", file=sys.stderr)
    print(f"{counts.get('ok', 0)} separated, {counts.get('skipped', 0)} already done, {counts.get('failed', 0)} failed "
          f"-> {args.out / 'results.csv'}", file=sys.stderr)
    return 1 if counts.get("failed", 0) else 0
