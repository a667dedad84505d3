"""The encoder's training-crop augmentation (encoders/augment.py)."""

import math

import numpy as np
import pytest
import torch

from marssep_core.encoders.augment import FbankAugmentConfig, augment_fbank

STD = 9.138


def _fbank(seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(1, 128, 204)).astype(np.float32))


def test_off_returns_the_input_and_draws_nothing():
    fbank, rng = _fbank(), np.random.default_rng(3)
    out = augment_fbank(fbank, valid_frames=204, cfg=FbankAugmentConfig(), std=STD, rng=rng)
    assert out is fbank
    assert rng.random() == np.random.default_rng(3).random()


def test_gain_shifts_the_valid_frames_only_within_its_range():
    fbank = _fbank()
    cfg = FbankAugmentConfig(gain_db=6.0)
    out = augment_fbank(fbank, valid_frames=150, cfg=cfg, std=STD, rng=np.random.default_rng(1))
    shift = out[..., :150] - fbank[..., :150]
    assert torch.allclose(shift, shift.flatten()[0].expand_as(shift), atol=1e-6)
    assert 0 < abs(float(shift.flatten()[0])) <= 6.0 * math.log(10.0) / 10.0 / STD + 1e-6
    assert torch.equal(out[..., 150:], fbank[..., 150:])


def test_equaliser_is_smooth_over_mel_and_constant_over_time():
    fbank = _fbank()
    out = augment_fbank(fbank, valid_frames=204, cfg=FbankAugmentConfig(eq_db=10.0), std=STD, rng=np.random.default_rng(2))
    curve = (out - fbank)[0, :, 0]
    assert torch.allclose(out - fbank, curve[None, :, None].expand_as(fbank), atol=1e-5)
    assert float(curve.abs().max()) <= 10.0 * math.log(10.0) / 10.0 / STD + 1e-6
    assert float(curve.diff().abs().max()) < float(curve.abs().max())  # interpolated, not per-bin noise


@pytest.mark.parametrize("seed", range(5))
def test_masks_zero_bounded_bands_and_stretches(seed):
    fbank = _fbank() + 5.0  # nothing is zero before masking
    cfg = FbankAugmentConfig(freq_masks=1, freq_mask_bins=20, time_masks=1, time_mask_frames=30)
    out = augment_fbank(fbank, valid_frames=204, cfg=cfg, std=STD, rng=np.random.default_rng(seed))
    zero = out[0] == 0
    rows, cols = zero.all(dim=1), zero.all(dim=0)
    assert int(rows.sum()) <= 20 and int(cols.sum()) <= 30
    assert torch.equal(zero, rows[:, None] | cols[None, :])
    again = augment_fbank(fbank, valid_frames=204, cfg=cfg, std=STD, rng=np.random.default_rng(seed))
    assert torch.equal(out, again)
