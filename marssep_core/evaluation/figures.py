"""Spectrogram figures (PNG, drawn with Pillow): mixture / target / each system's estimate.

Each panel is a log-power spectrogram (512-point STFT, hop 128) in dB relative to the loudest bin
of the mixture over a 70 dB range, low frequencies at the bottom, with a title strip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from marssep_core.audio.features import power_spectrogram
from marssep_core.io_utils import atomic_path

# (position, RGB) anchors of a dark-to-bright colour map (black, purple, red, orange, pale yellow)
_ANCHORS = np.array([[0.0, 0, 0, 4], [0.25, 80, 18, 123], [0.5, 182, 54, 121], [0.75, 251, 136, 97], [1.0, 252, 253, 191]])
_LUT = np.stack([np.interp(np.linspace(0, 1, 256), _ANCHORS[:, 0], _ANCHORS[:, c]) for c in (1, 2, 3)], axis=1).astype(np.uint8)
TITLE_HEIGHT = 14
RANGE_DB = 70.0


def _panel(wave: np.ndarray, reference_db: float) -> np.ndarray:
    level = 10.0 * np.log10(power_spectrogram(wave.astype(np.float64), 512, 128) + 1e-12)
    scaled = np.clip((level - reference_db + RANGE_DB) / RANGE_DB, 0.0, 1.0)
    return _LUT[(scaled[::-1] * 255).astype(np.uint8)]  # (freq, frames, 3), low frequencies at the bottom


def spectrogram_figure(panels: list[tuple[str, np.ndarray]], dest: Path) -> None:
    """Write a PNG of one spectrogram per ``(title, wave (samples,))``, stacked; the first panel
    (the mixture) sets the dB reference."""
    reference_db = 10.0 * np.log10(power_spectrogram(panels[0][1].astype(np.float64), 512, 128).max() + 1e-12)
    images = [_panel(wave, reference_db) for _, wave in panels]
    height, width = images[0].shape[:2]
    canvas = Image.new("RGB", (width, len(images) * (height + TITLE_HEIGHT)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, ((title, _), pixels) in enumerate(zip(panels, images)):
        top = i * (height + TITLE_HEIGHT)
        draw.text((4, top + 1), title, fill="black")
        canvas.paste(Image.fromarray(pixels), (0, top + TITLE_HEIGHT))
    with atomic_path(dest) as tmp:
        canvas.save(tmp, format="PNG")
