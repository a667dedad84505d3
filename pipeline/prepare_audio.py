"""DVC stage ``prepare_audio``: clean clips -> data/audio_bank (mono, model rate, float16)."""

import argparse
from pathlib import Path

import pandas as pd

from marssep_core.config import AudioConfig, PrepareAudioConfig, build, load_params
from marssep_core.data.audio_bank import build_audio_bank
from marssep_core.logging_setup import setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--clips", type=Path, default=Path("data/clean/clips.parquet"))
    parser.add_argument("--out", type=Path, default=Path("data/audio_bank"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    setup_logging()
    params = load_params(args.params)
    audio = build(AudioConfig, params.get("audio"), "audio")
    cfg = build(PrepareAudioConfig, params.get("prepare_audio"), "prepare_audio")
    bank = build_audio_bank(
        raw_dir=args.raw,
        clips=pd.read_parquet(args.clips),
        out_dir=args.out,
        sample_rate=audio.sample_rate,
        max_seconds=cfg.max_seconds,
        workers=cfg.workers,
    )
    print(f"prepare_audio: {len(bank.index)} clips, {bank.waves.shape[0] / audio.sample_rate / 3600:.2f} h at {audio.sample_rate} Hz")


if __name__ == "__main__":
    main()
