"""SDR / SIR / SAR of the target estimate with ``mir_eval``'s BSS Eval v3 (``bss_eval_sources``).

The protocol (DESIGN.md section 8): references ``[target, interferer]``, estimates
``[y_hat, mixture - y_hat]``, no permutation, and only the target row is reported. mir_eval
decomposes each estimate row on its own (the row-``j`` figures depend on estimate ``j`` and on all
references only), so this computes the target row alone, with mir_eval's own decomposition
(``_bss_decomp_mtifilt`` + ``_bss_source_crit``, 512-tap filters, pinned ``mir_eval==0.8.2``): half
the work of the full call, and the "mixture as estimate" baseline (whose second estimate row is
all zeros, which ``bss_eval_sources`` refuses) still gets scored. ``tests/test_evaluation_metrics.py``
checks it against ``bss_eval_sources`` itself.
"""

from __future__ import annotations

import warnings

import numpy as np

with warnings.catch_warnings():  # the separation module warns about its planned removal in 0.9
    warnings.simplefilter("ignore", FutureWarning)
    from mir_eval import separation as _separation

FILTER_LENGTH = 512  # mir_eval's distortion-filter length (fixed inside bss_eval_sources)


class BssEvalError(ValueError):
    """An input BSS Eval cannot score (silent or non-finite signal, length mismatch)."""


def _check(name: str, signal: np.ndarray, length: int) -> np.ndarray:
    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim != 1 or signal.shape[0] != length:
        raise BssEvalError(f"{name} has shape {signal.shape}, expected ({length},)")
    if not np.all(np.isfinite(signal)):
        raise BssEvalError(f"{name} has non-finite samples")
    if not np.any(signal):
        raise BssEvalError(f"{name} is silent (all zeros)")
    return signal


def bss_eval_target(estimate: np.ndarray, target: np.ndarray, interferer: np.ndarray) -> tuple[float, float, float]:
    """``(sdr, sir, sar)`` in dB of ``estimate`` against ``target`` with ``interferer`` as the
    other reference; all three are ``(samples,)``. Raises ``BssEvalError`` on unusable input."""
    length = np.asarray(target).shape[-1]
    references = np.stack([_check("target", target, length), _check("interferer", interferer, length)])
    estimate = _check("estimate", estimate, length)
    with np.errstate(divide="ignore", invalid="ignore"):
        parts = _separation._bss_decomp_mtifilt(references, estimate, 0, FILTER_LENGTH)
        sdr, sir, sar = _separation._bss_source_crit(*parts)
    return float(sdr), float(sir), float(sar)
