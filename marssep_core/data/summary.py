"""A markdown summary of a built corpus: per class, its sources, split counts, pictures, licences."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from marssep_core.data.layout import read_metadata
from marssep_core.data.splits import SPLITS


def corpus_summary(raw_dir: Path, metrics_path: Path | None = None) -> str:
    """Markdown tables for ``raw_dir``; split columns come from the clean stage's metrics if given."""
    metadata = read_metadata(raw_dir)
    classes = pd.read_csv(raw_dir / "classes.csv", keep_default_na=False).set_index("class")
    split_counts = json.loads(metrics_path.read_text())["class_split"] if metrics_path else {}
    lines = [
        "| corpus | class | raw clips | sources | " + " | ".join(SPLITS) + " | pictures | licences |",
        "|---" * (6 + len(SPLITS)) + "|",
    ]
    for (corpus, label), part in sorted(metadata.groupby(["corpus", "class"])):
        counts = split_counts.get(label, {})
        cells = [
            corpus,
            label,
            str(len(part)),
            ", ".join(sorted(part["source_package"].unique())),
            *[str(counts.get(s, "-")) for s in SPLITS],
            str(classes["n_images"].get(label, 0)),
            ", ".join(sorted(part["licence"].unique())),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| licence | clips |", "|---|---|"]
    lines += [f"| {name} | {count} |" for name, count in metadata["licence"].value_counts().items()]
    return "\n".join(lines) + "\n"
