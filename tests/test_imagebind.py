"""The ImageBind-compatible encoder: official layout on the meta device, loading, forward shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from marssep_core.encoders.checkpoint import load_imagebind_checkpoint, modality_of
from marssep_core.encoders.imagebind import ImageBindModel, imagebind_huge, tiny
from marssep_core.encoders.vocabulary import TOWERS
from marssep_core.torch_utils import CheckpointError

# A copy of shared/reference/imagebind_huge_state_dict_layout.tsv: the official checkpoint's
# key, shape and dtype per tensor (1311 tensors), taken from its public code.
LAYOUT = Path(__file__).resolve().parent / "data" / "imagebind_huge_state_dict_layout.tsv"


def _layout() -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in LAYOUT.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, _ = line.split("\t")
        shapes[key] = () if shape == "scalar" else tuple(int(n) for n in shape.split("x"))
    return shapes


def test_huge_config_matches_the_official_layout_on_meta():
    layout = _layout()
    assert len(layout) == 1311
    wanted = {k: v for k, v in layout.items() if modality_of(k) in TOWERS}
    with torch.device("meta"):
        model = ImageBindModel(imagebind_huge())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(wanted) - set(ours)) == []
    assert sorted(set(ours) - set(wanted)) == []
    assert {k: v for k, v in ours.items() if v != wanted[k]} == {}
    skipped = {modality_of(k) for k in layout} - set(TOWERS)
    assert skipped == {"depth", "thermal", "imu"}


def _synthetic_checkpoint(model: ImageBindModel, path: Path, extra: dict | None = None) -> dict:
    state = {k: torch.randn(v.shape) for k, v in model.state_dict().items()}
    state.update(extra or {})
    torch.save(state, path)
    return state


def test_synthetic_checkpoint_round_trips_and_reports_other_modalities(tmp_path):
    model = ImageBindModel(tiny())
    state = _synthetic_checkpoint(
        model, tmp_path / "ckpt.pth", {"modality_trunks.depth.blocks.0.norm_1.weight": torch.ones(3)}
    )
    fresh = ImageBindModel(tiny())
    report = load_imagebind_checkpoint(fresh, tmp_path / "ckpt.pth")
    assert report.loaded == len(state) - 1 and report.skipped_modalities == {"depth": 1}
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_mismatched_checkpoint_names_the_keys(tmp_path):
    model = ImageBindModel(tiny())
    state = {k: torch.zeros(v.shape) for k, v in model.state_dict().items()}
    del state["modality_heads.audio.2.weight"]
    state["modality_heads.text.proj.1.weight"] = torch.zeros(3, 3)
    state["modality_trunks.audio.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        load_imagebind_checkpoint(ImageBindModel(tiny()), tmp_path / "bad.pth")
    message = str(err.value)
    assert "missing (1): modality_heads.audio.2.weight" in message
    assert "unexpected (1): modality_trunks.audio.extra" in message
    assert "modality_heads.text.proj.1.weight: checkpoint (3, 3)" in message


@pytest.mark.parametrize("payload", [b"", b"garbage" * 10])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, payload):
    (tmp_path / "x.pth").write_bytes(payload)
    with pytest.raises(CheckpointError, match="x.pth"):
        load_imagebind_checkpoint(ImageBindModel(tiny()), tmp_path / "x.pth")


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"weights": object()}, tmp_path / "obj.pth")
    with pytest.raises(CheckpointError, match="weights-only"):
        load_imagebind_checkpoint(ImageBindModel(tiny()), tmp_path / "obj.pth")


def test_forward_shapes_and_postprocessing():
    cfg = tiny()
    model = ImageBindModel(cfg).eval()
    audio = torch.randn(2, 3, 1, cfg.mel_bins, cfg.audio_frames)
    image = torch.randn(2, 3, cfg.image_size, cfg.image_size)
    text = torch.randint(1, 100, (2, cfg.context_length))
    text[:, 5] = cfg.vocab_size - 1  # end of text
    with torch.no_grad():
        a, v, t = model.embed("audio", audio), model.embed("vision", image), model.embed("text", text)
        single = model.embed("audio", audio[:, 0])
    assert a.shape == v.shape == t.shape == (2, cfg.out_dim)
    torch.testing.assert_close(single.norm(dim=-1), torch.full((2,), 20.0))  # audio: fixed scale 20
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(t.norm(dim=-1), torch.full((2,), 1 / 0.07), rtol=1e-4, atol=1e-4)
    # the text embedding reads the end-of-text position: tokens after it do not matter (causal)
    other = text.clone()
    other[:, 6:] = 7
    with torch.no_grad():
        torch.testing.assert_close(model.embed("text", other), t)
