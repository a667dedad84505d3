"""The test-pair recipe places every crop over sound (``marssep_core/data/test_pairs.py``)."""

import numpy as np
import pandas as pd

from marssep_core.config import TestPairsConfig
from marssep_core.data.test_pairs import make_test_pairs

RATE = 8000
CFG = TestPairsConfig(pairs_per_corpus=40, crop_seconds=2.0)


def _clips() -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Two classes of 10 s test clips: ``howl`` clips hold sound only in 7.0-7.6 s (digital
    silence elsewhere, like a howl in a long file), ``hum`` clips hold sound throughout."""
    rng = np.random.default_rng(0)
    waves, rows = {}, []
    for label in ("howl", "hum"):
        for take in range(3):
            clip_id = f"{label}{take}"
            wave = np.zeros(10 * RATE, dtype=np.float32)
            if label == "howl":
                wave[7 * RATE : int(7.6 * RATE)] = rng.normal(0.0, 0.3, int(0.6 * RATE))
            else:
                wave[:] = 0.2 * np.sin(2 * np.pi * 220.0 * np.arange(wave.size) / RATE)
            waves[clip_id] = wave
            rows.append({"clip_id": clip_id, "class": label, "corpus": "c", "split": "test", "duration": 10.0})
    return pd.DataFrame(rows), waves


def _pairs(clean: pd.DataFrame, waves: dict[str, np.ndarray], cfg: TestPairsConfig = CFG) -> pd.DataFrame:
    classes = pd.DataFrame({"class": ["howl", "hum"], "text": ["a howl", "a hum"]})
    images = pd.DataFrame(columns=["image_id", "class", "path"])
    return make_test_pairs(clean, classes, images, cfg, audio=lambda clip_id: (waves[clip_id], RATE))


def _sound_seconds(wave: np.ndarray, offset_s: float, crop_s: float) -> float:
    crop = wave[int(round(offset_s * RATE)) : int(round((offset_s + crop_s) * RATE))]
    return float(np.count_nonzero(crop)) / RATE


def test_every_crop_holds_the_sound_of_a_mostly_silent_clip():
    clean, waves = _clips()
    pairs = _pairs(clean, waves)
    for role in ("target", "interferer"):
        howls = pairs[pairs[f"{role}_class"] == "howl"]
        assert len(howls) > 0
        sound = [_sound_seconds(waves[c], o, CFG.crop_seconds) for c, o in zip(howls[f"{role}_clip"], howls[f"{role}_offset_s"])]
        # the clip has 0.6 s of sound, under min_active_seconds: the crop must take all of it
        assert min(sound) >= 0.55, sound
        assert howls[f"{role}_offset_s"].between(5.55, 7.05).all()  # to the 50 ms activity frame


def test_crops_of_clips_with_sound_throughout_stay_uniform_and_reproducible():
    clean, waves = _clips()
    pairs = _pairs(clean, waves)
    hums = pd.concat([pairs.loc[pairs["target_class"] == "hum", "target_offset_s"],
                      pairs.loc[pairs["interferer_class"] == "hum", "interferer_offset_s"]])
    assert hums.between(0.0, 8.0).all() and hums.min() < 2.0 and hums.max() > 6.0
    pd.testing.assert_frame_equal(pairs, _pairs(clean, waves))


def test_a_clip_without_any_sound_still_gets_a_crop():
    clean, waves = _clips()
    waves = {clip_id: np.zeros_like(wave) if clip_id.startswith("howl") else wave for clip_id, wave in waves.items()}
    pairs = _pairs(clean, waves)
    assert pairs["target_offset_s"].between(0.0, 8.0).all() and len(pairs) == CFG.pairs_per_corpus
