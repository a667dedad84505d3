"""Alignment losses on hand-checked cases; MLBP fusion with missing modalities."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from marssep_core.encoders.fusion import MLBPFusion, fuse
from marssep_core.encoders.losses import consistency, hardest_negatives, info_nce, triplet


def test_info_nce_two_orthogonal_pairs():
    eye = torch.eye(2)
    # logits = I / T with T = 1: each row's CE is log(1 + e^-1)
    assert info_nce(eye, eye, 1.0).item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    # T = 0.5 sharpens: log(1 + e^-2)
    assert info_nce(eye, eye, 0.5).item() == pytest.approx(math.log(1 + math.exp(-2)), abs=1e-6)
    # swapped pairs are maximally wrong: log(1 + e^1)
    assert info_nce(eye, eye.flip(0), 1.0).item() == pytest.approx(math.log(1 + math.e), abs=1e-6)


def test_info_nce_does_not_push_apart_same_class_rows():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    masked = info_nce(a, a, 1.0, labels)
    # rows 0 and 1 see only the class-1 row as a negative: log(1 + e^(0 - 1)) each; row 2 sees
    # two negatives at cos 0: log(1 + 2 e^-1)
    expected = (2 * math.log(1 + math.exp(-1)) + math.log(1 + 2 * math.exp(-1))) / 3
    assert masked.item() == pytest.approx(expected, abs=1e-6)
    assert info_nce(a, a, 1.0).item() > masked.item()


def test_triplet_and_consistency_values():
    a, p, n = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    assert triplet(a, p, n, margin=0.2).item() == 0.0
    assert triplet(a, n, p, margin=0.2).item() == pytest.approx(1.2)
    assert consistency(a, p).item() == pytest.approx(0.0)
    assert consistency(a, -a).item() == pytest.approx(2.0)


def test_hardest_negative_skips_same_label():
    candidates = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    picked = hardest_negatives(candidates, candidates, labels)
    torch.testing.assert_close(picked[0], candidates[3])  # most similar row of the other class
    torch.testing.assert_close(picked[2], candidates[1])


def test_mlbp_handles_missing_modalities_and_starts_at_the_mean():
    torch.manual_seed(0)
    fusion = MLBPFusion(dim=8, rank=4)
    audio, text = torch.randn(3, 8), torch.randn(3, 8)
    anchor = fusion({"audio": audio, "text": None, "vision": None})
    torch.testing.assert_close(anchor, F.normalize(audio, dim=-1))  # untrained: the plain mean
    both = fusion({"audio": audio, "text": text, "vision": None}, present={"text": torch.tensor([1, 0, 1])})
    torch.testing.assert_close(both[1], F.normalize(audio[1], dim=-1))  # row 1 has no text
    torch.testing.assert_close(both[0], fuse("mean", {"audio": audio[:1], "text": text[:1]})[0])
    loss = (1 - F.cosine_similarity(both, torch.randn(3, 8))).mean()
    loss.backward()
    assert fusion.out.weight.grad is not None and fusion.out.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least one"):
        fusion({"audio": None, "text": None, "vision": None})


def test_fuse_ablations():
    audio, text = torch.randn(2, 4), torch.randn(2, 4)
    torch.testing.assert_close(fuse("text", {"audio": audio, "text": text}), F.normalize(text, dim=-1))
    with pytest.raises(ValueError, match="needs the audio"):
        fuse("audio", {"text": text})
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse("max", {"audio": audio})
