"""Bring-your-own corpora: the three listing layouts, missing files, merging, and the CLI."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from marssep_core.audio.io import save_audio
from marssep_core.cli import main
from marssep_core.data.layout import read_metadata
from tests.conftest import SR, make_tiny_corpus, synth_clip


def _music_tree(root: Path) -> Path:
    """A MUSIC-like tree: audio/<instrument>/<video>.wav and frames/<instrument>/<video>.mp4/*.jpg."""
    lines = []
    for index, instrument in enumerate(["violin", "flute"]):
        for video in range(2):
            audio = root / "audio" / instrument / f"vid{video}.wav"
            save_audio(audio, synth_clip("tone", 10 * index + video), SR)
            frames = root / "frames" / instrument / f"vid{video}.mp4"
            frames.mkdir(parents=True)
            for k in range(3):
                Image.new("RGB", (8, 8), (k * 40, 0, 0)).save(frames / f"{k:06d}.jpg")
            lines.append(f"audio/{instrument}/vid{video}.wav,frames/{instrument}/vid{video}.mp4,3")
    lines.append("audio/violin/missing.wav,frames/violin/missing.mp4,3")
    listing = root / "train.csv"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def test_sop_import_into_existing_corpus(tmp_path, capsys):
    raw = tmp_path / "raw"
    make_tiny_corpus(raw, clips_per_class=2)
    before = read_metadata(raw)
    listing = _music_tree(tmp_path / "music")
    code = main(["data", "import", "--csv", str(listing), "--audio-root", str(tmp_path / "music"),
                 "--layout", "sop", "--corpus", "music", "--out", str(raw)])
    assert code == 0
    out = capsys.readouterr()
    assert "imported 4 clips" in out.out and "missing.wav: file not found" in out.err
    metadata = read_metadata(raw)
    music = metadata[metadata["corpus"] == "music"]
    assert sorted(music["class"].unique()) == ["flute", "violin"]
    assert len(metadata) == len(before) + 4  # the generated corpora are kept
    assert music["origin"].str.startswith("music:vid").all()
    assert all((raw / p).is_file() for p in music["path"])
    images = pd.read_csv(raw / "images.csv", keep_default_na=False)
    frames = images[images["kind"] == "video_frame"]
    assert sorted(frames["class"]) == ["flute", "violin"]
    assert frames["path"].map(lambda p: p.endswith("000001.jpg") or "frame" in p).all()
    classes = pd.read_csv(raw / "classes.csv", keep_default_na=False).set_index("class")
    assert classes.loc["violin", "corpus"] == "music" and classes.loc["violin", "n_images"] == 1
    # importing again replaces the corpus instead of doubling it
    main(["data", "import", "--csv", str(listing), "--audio-root", str(tmp_path / "music"),
          "--layout", "sop", "--corpus", "music", "--out", str(raw)])
    assert len(read_metadata(raw)) == len(before) + 4


def test_vggsound_layout_uses_video_as_origin_and_split_as_hint(tmp_path):
    root = tmp_path / "vgg"
    for ytid, start in [("abc", 30), ("abc", 40), ("xyz", 0)]:
        save_audio(root / f"{ytid}_{start:06d}.flac", synth_clip("noise", start), SR)
    listing = tmp_path / "vggsound.csv"
    listing.write_text("abc,30,dog barking,train\nabc,40,dog barking,test\nxyz,0,rain,train\nnone,5,rain,train\n")
    raw = tmp_path / "raw"
    assert main(["data", "import", "--csv", str(listing), "--audio-root", str(root), "--layout", "vggsound",
                 "--corpus", "vggsound", "--out", str(raw)]) == 0
    metadata = read_metadata(raw).set_index("original_path")
    assert len(metadata) == 3
    first, second = metadata.loc[str(root / "abc_000030.flac")], metadata.loc[str(root / "abc_000040.flac")]
    assert first["class"] == "dog_barking" and first["origin"] == second["origin"] == "vggsound:abc"
    assert first["split_hint"] == "trainval" and second["split_hint"] == "test"


def test_table_layout_and_bad_listing(tmp_path, capsys):
    save_audio(tmp_path / "a.wav", synth_clip("chirp", 1), SR)
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\na.wav,bird\n")
    assert main(["data", "import", "--csv", str(listing), "--audio-root", str(tmp_path), "--layout", "table",
                 "--corpus", "mine", "--out", str(tmp_path / "raw")]) == 0
    assert read_metadata(tmp_path / "raw")["class"].tolist() == ["bird"]
    assert main(["data", "import", "--csv", str(tmp_path / "nope.csv"), "--audio-root", str(tmp_path),
                 "--layout", "table", "--corpus", "mine", "--out", str(tmp_path / "raw")]) == 2
    assert "nope.csv: listing not found" in capsys.readouterr().err


def test_summary_command_lists_every_class(tmp_path, capsys):
    make_tiny_corpus(tmp_path / "raw", clips_per_class=2)
    assert main(["data", "summary", "--raw", str(tmp_path / "raw")]) == 0
    table = capsys.readouterr().out
    for label in ("tone", "noise", "chirp", "low", "high", "square"):
        assert f"| {label} | 2 | generated |" in table
    assert "| CC0 | 12 |" in table
