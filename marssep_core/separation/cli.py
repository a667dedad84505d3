"""``marssep separate``: files in, one separated WAV per file out (atomic), missing inputs skipped."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from marssep_core.audio.io import AudioDecodeError, save_audio
from marssep_core.encoders.checkpoint import CheckpointError


def run_separate(args: argparse.Namespace) -> int:
    """Exit status: 0 all separated, 1 some inputs skipped, 2 nothing usable (bad model/query)."""
    from marssep_core.separation.api import separate

    if not (args.text or args.audio or args.image):
        print("error: give a query: --text, --audio or --image", file=sys.stderr)
        return 2
    for ref in (args.audio or []) + (args.image or []):
        if not ref.is_file():
            print(f"error: {ref}: query file not found", file=sys.stderr)
            return 2
    failed = 0
    for path in tqdm(args.mixtures, desc="separate", unit="file", disable=len(args.mixtures) < 2):
        out = args.out_dir / f"{path.stem}.wav"
        try:
            estimate, rate = separate(
                path, query_text=args.text, query_audio=args.audio, query_image=args.image, model=args.model,
                encoder=args.encoder, negative_text=args.negative_text, negative_audio=args.negative_audio,
                negative_image=args.negative_image, device=args.device, segment=args.segment, overlap=args.overlap,
            )
        except CheckpointError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except AudioDecodeError as err:
            print(f"skipped {path}: {err}", file=sys.stderr)
            failed += 1
            continue
        save_audio(out, estimate, rate, subtype="FLOAT")
        print(f"{path} -> {out}")
    return 1 if failed else 0
