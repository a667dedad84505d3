"""From the per-unit table to versioned numbers: flat metric keys and distribution tables.

Keys are ``<corpus>.<system>.<modality>.<metric>`` and ``..._sem`` (standard error of the mean)
for every corpus and ``all``, plus ``<corpus>.<system>.<modality>.n``; failed units are left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from marssep_core.audio.signal import mean_and_stderr
from marssep_core.evaluation.metrics import METRICS

QUANTILES = np.linspace(0.0, 1.0, 51)


def summarize(table: pd.DataFrame, digits: int = 4) -> dict[str, float | int]:
    """Flat ``{key: value}`` over the scored units of ``table`` (``runner.evaluate_systems``)."""
    good = table[table["error"] == ""]
    out: dict[str, float | int] = {}
    for corpus, part in [*good.groupby("corpus", sort=True), ("all", good)]:
        for (system, modality), unit in part.groupby(["system", "modality"], sort=False):
            prefix = f"{corpus}.{system}.{modality}"
            out[f"{prefix}.n"] = int(len(unit))
            for metric in METRICS:
                mean, sem = mean_and_stderr(unit[metric].to_numpy(np.float64))
                out[f"{prefix}.{metric}"] = round(mean, digits)
                out[f"{prefix}.{metric}_sem"] = round(sem, digits)
    return out


def distribution(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Quantile curves (inverse CDFs) of ``metric`` over all pairs: a ``quantile`` column and one
    column per ``<system>_<modality>``, for ``dvc plots``."""
    good = table[table["error"] == ""]
    curves = {"quantile": QUANTILES}
    for (system, modality), unit in good.groupby(["system", "modality"], sort=False):
        curves[f"{system}_{modality}"] = np.round(np.quantile(unit[metric].to_numpy(np.float64), QUANTILES), 4)
    return pd.DataFrame(curves)


def paired_difference(table: pd.DataFrame, system: str, baseline: str, metric: str, digits: int = 4) -> dict[str, dict[str, float]]:
    """Per modality: mean and s.e. of ``metric(system) - metric(baseline)`` over the pairs both
    scored (the s.e. of a paired difference, smaller than the two separate s.e. suggest)."""
    good = table[table["error"] == ""]
    out = {}
    for modality, part in good.groupby("modality", sort=False):
        wide = part.pivot_table(index="pair_id", columns="system", values=metric, observed=True)
        if system not in wide or baseline not in wide:
            continue
        diff = (wide[system] - wide[baseline]).dropna().to_numpy()
        mean, sem = mean_and_stderr(diff)
        out[str(modality)] = {"mean": round(mean, digits), "sem": round(sem, digits), "n": int(diff.size)}
    return out
