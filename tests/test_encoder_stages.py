"""Encoder stages end to end on the tiny generated corpus (a few steps each)."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
import torch

from marssep_core.data.audio_bank import build_audio_bank, load_audio_bank
from marssep_core.data.stages import run_clean, run_ingest
from marssep_core.encoders.data import EncoderData
from marssep_core.encoders.fusion_train import FusionTrainConfig, run_fusion_stage
from marssep_core.encoders.imagebind import tiny
from marssep_core.encoders.report import align_table
from marssep_core.encoders.stages import run_encoder_stage
from marssep_core.encoders.store import load_encoder
from marssep_core.encoders.tokenizer import ClipTokenizer
from marssep_core.encoders.train import EncoderTrainConfig
from marssep_core.training.loop import LoopConfig


@pytest.fixture
def encoder_data(tiny_raw, tmp_path, ingest_cfg, clean_cfg):
    catalog = run_ingest(tiny_raw, tmp_path / "catalog", ingest_cfg)
    clean_cfg = dataclasses.replace(clean_cfg, test_pairs=dataclasses.replace(clean_cfg.test_pairs, pairs_per_corpus=6))
    result = run_clean(raw_dir=tiny_raw, catalog=catalog, out_dir=tmp_path / "clean", metrics_path=tmp_path / "data.json", cfg=clean_cfg)
    bank = build_audio_bank(raw_dir=tiny_raw, clips=result.clean, out_dir=tmp_path / "bank", sample_rate=16000, max_seconds=10.0, workers=1)
    assert len(bank.index) == len(result.clean)
    data = EncoderData(load_audio_bank(tmp_path / "bank"), tiny_raw, ClipTokenizer(), tiny().image_size)
    return data, result.pairs


@pytest.mark.slow
def test_pretrain_align_and_fusion_write_checkpoints_and_metrics(encoder_data, tmp_path):
    torch.set_num_threads(2)
    data, pairs = encoder_data
    cfg = EncoderTrainConfig(loop=LoopConfig(steps=4, batch_size=8, eval_every=2, warmup=1, device="cpu"))
    previous = None
    for stage in ("pretrain", "stage1", "stage2", "stage3"):
        report = run_encoder_stage(
            stage=stage,
            data=data,
            pairs=pairs,
            cfg=cfg,
            out_model=tmp_path / f"{stage}.pt",
            out_history=tmp_path / f"{stage}.csv",
            out_metrics=tmp_path / f"{stage}.json",
            run_dir=tmp_path / "runs" / stage,
            start_from=previous,
        )
        previous = tmp_path / f"{stage}.pt"
        saved = json.loads((tmp_path / f"{stage}.json").read_text())
        assert saved == report
        for key in ("audio_text_r1", "text_audio_r5", "audio_audio_r1", "audio_image_r1", "image_audio_r5",
                    "zero_shot_acc", "gap_text", "gap_audio"):
            assert key in report, (stage, key)
        assert len(pd.read_csv(tmp_path / f"{stage}.csv")) == 4
    assert "before" in json.loads((tmp_path / "stage1.json").read_text())
    # alignment trains heads only: trunks are bit-identical to pretraining's
    pretrained, _, _ = load_encoder(tmp_path / "pretrain.pt")
    aligned, _, meta = load_encoder(tmp_path / "stage3.pt")
    assert meta["stage"] == "stage3"
    for key, value in pretrained.state_dict().items():
        if key.startswith(("modality_trunks", "modality_preprocessors")):
            torch.testing.assert_close(aligned.state_dict()[key], value)
    heads_changed = any(
        not torch.equal(aligned.state_dict()[k], v) for k, v in pretrained.state_dict().items() if k.startswith("modality_heads")
    )
    assert heads_changed
    fusion = run_fusion_stage(encoder_path=tmp_path / "stage3.pt", data=data,
                              cfg=FusionTrainConfig(loop=LoopConfig(steps=5, batch_size=8, eval_every=5, device="cpu")),
                              out_model=tmp_path / "mlbp.pt", out_metrics=tmp_path / "fusion.json", run_dir=tmp_path / "runs" / "fusion")
    assert set(fusion) == {"anchor_acc_mlbp", "anchor_acc_mean", "anchor_acc_audio", "anchor_acc_text", "best_step"}
    assert fusion["best_step"] == 5 and all(0.0 <= fusion[f"anchor_acc_{k}"] <= 1.0 for k in ("mlbp", "mean", "audio", "text"))
    assert not list((tmp_path / "runs").glob("*/last.pt"))  # resume files go once the outputs exist
    combined = {s: json.loads((tmp_path / f"{s}.json").read_text()) for s in ("pretrain", "stage1", "stage2", "stage3")}
    (tmp_path / "align.json").write_text(json.dumps({**combined, "fusion": fusion}))
    table = align_table(tmp_path / "align.json")
    assert table.count("\n") == 2 + 15 + 3 + 4
    expected = combined["stage3"]["gap_text"] - combined["pretrain"]["gap_text"]
    assert f"{expected:+.4f}" in table.splitlines()[2 + 13]


def test_batches_are_class_balanced_and_complete(encoder_data):
    import numpy as np

    data, _ = encoder_data
    batch = data.sample("train", 12, np.random.default_rng(0))
    assert batch.audio.shape == (12, 1, 128, 204)
    assert batch.text.shape == (12, 77) and batch.image.shape == (12, 3, 224, 224)
    assert batch.has_image.all()  # every tiny class has a picture
    same = data.sample_same_class("train", batch.labels, np.random.default_rng(1))
    assert same.shape == batch.audio.shape


def test_wordings_draw_each_rows_text_among_its_own_class_wordings(encoder_data):
    import numpy as np

    from marssep_core.encoders.phrasing import phrasings

    data, _ = encoder_data
    plain = data.sample("train", 64, np.random.default_rng(0))
    assert torch.equal(plain.text, data.text_tokens[plain.labels])
    worded = data.sample("train", 64, np.random.default_rng(0), wordings=True)
    drawn_per_class: dict[int, set[tuple[int, ...]]] = {}
    for label, tokens in zip(worded.labels.tolist(), worded.text):
        options = data.wording_tokens[label]
        assert any(torch.equal(tokens, option) for option in options), data.classes[label]
        drawn_per_class.setdefault(label, set()).add(tuple(tokens.tolist()))
    assert max(len(drawn) for drawn in drawn_per_class.values()) > 1  # not always the class text
    assert [len(t) for t in data.wording_tokens] == [len(phrasings(c, t)) for c, t in zip(data.classes, data.texts)]


def test_wording_pairs_add_another_wording_and_leave_the_other_draws_alone(encoder_data):
    import numpy as np

    from marssep_core.encoders.imagebind import ImageBindModel
    from marssep_core.encoders.train import pretrain_losses

    data, _ = encoder_data
    worded = data.sample("train", 32, np.random.default_rng(3), wordings=True)
    paired = data.sample("train", 32, np.random.default_rng(3), wordings=True, wording_pairs=True)
    assert worded.text_pair is None
    for field in ("audio", "text", "image", "labels"):
        assert torch.equal(getattr(worded, field), getattr(paired, field)), field
    for label, first, second in zip(paired.labels.tolist(), paired.text, paired.text_pair):
        options = data.wording_tokens[label]
        assert any(torch.equal(second, option) for option in options)
        assert not torch.equal(first, second) or len(options) == 1
    with pytest.raises(ValueError, match="wording_pairs needs wordings"):
        data.sample("train", 4, np.random.default_rng(0), wording_pairs=True)
    model = ImageBindModel(tiny())
    terms = pretrain_losses(model, paired, torch.tensor(0.07), ("audio_vision", "text_vision", "text_text"))
    assert set(terms) == {"audio_vision", "text_vision", "text_text"} and terms["text_text"] > 0
    with pytest.raises(ValueError, match="second wording"):
        pretrain_losses(model, worded, torch.tensor(0.07), ("text_text",))
    # "pictureless": only rows without a picture pair their wordings (every tiny class has one)
    assert "text_text" not in pretrain_losses(model, paired, torch.tensor(0.07), ("text_text",), text_text_rows="pictureless")
    three_without = dataclasses.replace(paired, has_image=torch.arange(32) >= 3)
    assert "text_text" in pretrain_losses(model, three_without, torch.tensor(0.07), ("text_text",), text_text_rows="pictureless")


def test_pretrain_stage_loads_an_official_layout_checkpoint_instead_of_training(encoder_data, tmp_path):
    from marssep_core.encoders.imagebind import ImageBindModel

    data, pairs = encoder_data
    source = ImageBindModel(tiny())
    torch.save({k: torch.randn(v.shape) for k, v in source.state_dict().items()}, tmp_path / "official.pth")
    report = run_encoder_stage(
        stage="pretrain",
        data=data,
        pairs=pairs,
        cfg=EncoderTrainConfig(loop=LoopConfig(steps=1000)),
        out_model=tmp_path / "p.pt",
        out_history=tmp_path / "p.csv",
        out_metrics=tmp_path / "p.json",
        run_dir=tmp_path / "run",
        imagebind_checkpoint=str(tmp_path / "official.pth"),
    )
    assert pd.read_csv(tmp_path / "p.csv").empty  # loaded, not trained
    loaded, _, _ = load_encoder(tmp_path / "p.pt")
    expected = torch.load(tmp_path / "official.pth", weights_only=True)
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, expected[key])
    assert "audio_text_r1" in report
