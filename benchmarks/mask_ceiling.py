"""How much the separator's mask resolution can cost: oracle masks on the fixed test pairs, at
full STFT resolution and through the U-Net's log-frequency warp (``model.warp_bins``).

The network predicts its mask on ``warp_bins`` log-spaced bins and interpolates it back to the 513
linear bins, so its best possible mask is a warped one. Rows: the ideal ratio mask, the ideal
binary mask, the BCE loss's target (``|S| > 0.5 |X|``), and the ratio mask computed on warped
magnitudes (the best a warped mask can express) or projected through the warp, for each
``--warps BINS:SCALE`` (default: 128 and 256 bins, the default's and the paper's, on the log scale
and the mel-like one, ``model.warp_scale``; keys ending ``_mel``). SI-SDRi in dB per corpus.
Results go to ``benchmarks/results/mask_ceiling.json``.

    python benchmarks/mask_ceiling.py --warps 128:log 256:log 128:mel 160:mel 192:mel 256:mel
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from marssep_core.audio.signal import pair_si_sdri, si_sdr_np
from marssep_core.audio.stft import STFT
from marssep_core.config import AudioConfig, load_section
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.separation.data import pair_signals
from marssep_core.separation.model import WARP_SCALES, warp_matrices

ROOT = Path(__file__).resolve().parents[1]


def warp_spec(text: str) -> tuple[int, str]:
    """``"BINS:SCALE"`` (e.g. ``160:mel``) -> ``(160, "mel")``: an argparse type, so a bad
    spec is refused with its reason before any work (also used by ``bench_separator.py``)."""
    bins, _, scale = text.partition(":")
    if not bins.isdigit() or int(bins) < 2 or scale not in WARP_SCALES:
        raise argparse.ArgumentTypeError(f"{text!r}: expected BINS:SCALE, BINS >= 2 and SCALE one of {WARP_SCALES}")
    return int(bins), scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bank", type=Path, default=ROOT / "data" / "audio_bank")
    parser.add_argument("--pairs", type=Path, default=ROOT / "data" / "clean" / "test_pairs.csv")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mask_ceiling.json")
    parser.add_argument("--warps", nargs="+", type=warp_spec, default=[(128, "log"), (256, "log"), (128, "mel"), (256, "mel")],
                        metavar="BINS:SCALE", help="warps to project the oracle masks through")
    args = parser.parse_args()
    pairs = pd.read_csv(args.pairs, keep_default_na=False)
    mixture, target, interferer = pair_signals(pairs, load_audio_bank(args.bank))
    stft = STFT.from_config(load_section(AudioConfig, "audio", args.params))
    magnitude, phase = stft.magnitude_phase(torch.from_numpy(mixture))
    speech = stft.forward(torch.from_numpy(target)).abs()
    noise = stft.forward(torch.from_numpy(interferer)).abs()
    baseline = si_sdr_np(mixture, target)
    corpus = pairs["corpus"].to_numpy()

    def score(mask: torch.Tensor) -> dict[str, float]:
        estimate = stft.from_magnitude_phase(mask * magnitude, phase, mixture.shape[-1]).numpy()
        _, sdri = pair_si_sdri(estimate, target, baseline)
        return {str(c): round(float(np.mean(sdri[corpus == c])), 2) for c in sorted(set(corpus))}

    ratio = speech / (speech + noise + 1e-8)
    result = {"irm": score(ratio), "ibm": score((speech > noise).float()),
              "bce_target": score((speech > 0.5 * magnitude).float())}
    for bins, scale in args.warps:
        to_warped, to_linear = warp_matrices(stft.n_freq, bins, scale)
        warped_speech = torch.einsum("wf,pft->pwt", to_warped, speech)
        warped_noise = torch.einsum("wf,pft->pwt", to_warped, noise)
        suffix = f"{bins}" if scale == "log" else f"{bins}_{scale}"
        warped_ratio = warped_speech / (warped_speech + warped_noise + 1e-8)
        result[f"irm_on_warped_magnitudes_{suffix}"] = score(torch.einsum("fw,pwt->pft", to_linear, warped_ratio))
        result[f"irm_projected_through_warp_{suffix}"] = score(
            torch.einsum("fw,pwt->pft", to_linear, torch.einsum("wf,pft->pwt", to_warped, ratio)))
    args.out.write_text(json.dumps({"pairs": len(pairs), "si_sdri_db": result}, indent=2) + "\n")
    for name, row in result.items():
        print(f"{name:36s} {row}")


if __name__ == "__main__":
    main()
