"""A markdown table of the per-stage encoder metrics in ``metrics/align.json``."""

from __future__ import annotations

import json
from pathlib import Path

STAGES = ("pretrain", "stage1", "stage2", "stage3")
COLUMNS = (
    "audio_text_r1", "audio_text_r5", "text_audio_r1", "text_audio_r5", "audio_audio_r1", "audio_audio_r5",
    "audio_image_r1", "audio_image_r5", "image_audio_r1", "image_audio_r5",
    "zero_shot_acc", "zero_shot_acc_instruments", "zero_shot_acc_everyday", "gap_text", "gap_audio",
)


def align_table(metrics_path: Path) -> str:
    """Rows: metrics; columns: stages, plus the change from pretraining to stage 3."""
    metrics = json.loads(Path(metrics_path).read_text())
    lines = ["| metric | " + " | ".join(STAGES) + " | stage3 - pretrain |", "|---" * (len(STAGES) + 2) + "|"]
    for column in COLUMNS:
        values = [metrics[s].get(column) for s in STAGES]
        change = values[-1] - values[0] if None not in (values[0], values[-1]) else None
        cells = ["-" if v is None else f"{v:.4f}" for v in values] + ["-" if change is None else f"{change:+.4f}"]
        lines.append(f"| {column} | " + " | ".join(cells) + " |")
    fusion = metrics.get("fusion", {})
    if fusion:
        lines += ["", "| reward anchor (val) | accuracy |", "|---|---|"]
        lines += [f"| {k.removeprefix('anchor_acc_')} | {v:.4f} |" for k, v in fusion.items() if k.startswith("anchor_acc_")]
    return "\n".join(lines) + "\n"
