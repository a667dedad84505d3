"""ONNX export: parity with PyTorch, the bundle's integrity checks, providers, chunked streaming."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from PIL import Image

from marssep_core.audio.io import save_audio
from marssep_core.audio.signal import si_sdr_np
from marssep_core.cli import main
from marssep_core.serving.engine import load_engine
from marssep_core.serving.runtime import CPU, CUDA, ProviderError, open_session, requested_providers
from marssep_core.serving.stage import ExportConfig, ParityConfig, ParityError, check_bundle
from marssep_core.torch_utils import CheckpointError
from tests.conftest import synth_clip


@pytest.fixture(scope="module")
def engines(tiny_separator, tiny_bundle):
    return load_engine("torch", tiny_separator, device="cpu"), load_engine("onnx", tiny_bundle, device="cpu")


@pytest.mark.parametrize("batch,frames", [(1, 1), (1, 17), (2, 63), (5, 200), (3, 1001)])
def test_onnx_mask_matches_pytorch_on_random_inputs(engines, batch, frames):
    torch_engine, onnx_engine = engines
    generator = torch.Generator().manual_seed(batch * 1000 + frames)
    n_freq = torch_engine.stft.n_freq
    magnitude = torch.exp(torch.randn(batch, n_freq, frames, generator=generator) * 3.0 - 2.0).numpy()
    query = F.normalize(torch.randn(batch, torch_engine.masker.mask_net.cfg.query_dim, generator=generator), dim=-1).numpy()
    expected = torch_engine.masker(magnitude, query)
    got = onnx_engine.masker(magnitude, query)
    assert got.shape == (batch, n_freq, frames)
    assert np.abs(got - expected).max() < 1e-4


def test_onnx_towers_match_pytorch(engines, separator_assets):
    torch_engine, onnx_engine = engines
    picture = next((separator_assets.raw / "images").rglob("*.png"))
    for run in (lambda e: e.text(["a tone sound", "noise", "a chirp"]),
                lambda e: e.audio([synth_clip("tone", 1), synth_clip("noise", 2, 2.5)]),
                lambda e: e.image([picture, picture])):
        expected, got = run(torch_engine.encoder), run(onnx_engine.encoder)
        assert got.shape == expected.shape and float((got - expected).abs().max()) < 1e-4


def test_cli_onnx_and_torch_backends_give_the_same_audio(tiny_separator, tiny_bundle, tmp_path):
    mixture = np.stack([synth_clip("tone", 3, 2.5) + synth_clip("noise", 4, 2.5), synth_clip("chirp", 5, 2.5)])
    save_audio(tmp_path / "mix.wav", mixture, 16000)
    outputs = {}
    for backend, model in (("onnx", tiny_bundle), ("torch", tiny_separator)):
        code = main(["separate", str(tmp_path / "mix.wav"), "--text", "a tone sound", "--backend", backend,
                     "--model", str(model), "--device", "cpu", "--segment", "1.0", "-o", str(tmp_path / backend)])
        assert code == 0
        outputs[backend], rate = sf.read(tmp_path / backend / "mix.wav", dtype="float32", always_2d=True)
        assert rate == 16000 and outputs[backend].shape == (40000, 2)
        results = (tmp_path / backend / "results.csv").read_text()
        assert ("CPUExecutionProvider" if backend == "onnx" else "torch-cpu") in results
    assert np.abs(outputs["onnx"] - outputs["torch"]).max() < 1e-4


def test_streamed_file_equals_in_memory_separation_and_keeps_rate_and_channels(engines, tmp_path):
    from marssep_core.audio.resample import resample

    onnx_engine = dataclasses.replace(engines[1], segment=1.0, batch=3)
    query = onnx_engine.encoder.text(["a tone sound"])
    mono = synth_clip("tone", 6, 4.3) + synth_clip("noise", 7, 4.3)
    save_audio(tmp_path / "mono.wav", mono, 16000, subtype="FLOAT")
    result = onnx_engine.separate_file(tmp_path / "mono.wav", tmp_path / "out.wav", query, subtype="FLOAT")
    streamed, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    assert result.seconds == pytest.approx(4.3, abs=1e-3)
    np.testing.assert_allclose(streamed, onnx_engine.separate_array(mono[None], query)[0], atol=1e-6)
    stereo = resample(np.stack([mono, 0.3 * mono]), 16000, 44100)
    save_audio(tmp_path / "stereo.wav", stereo, 44100)
    onnx_engine.separate_file(tmp_path / "stereo.wav", tmp_path / "stereo.flac", query, subtype="PCM_16")
    info = sf.info(tmp_path / "stereo.flac")
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (44100, 2, stereo.shape[1], "PCM_16")


def test_chunked_output_matches_unchunked_away_from_chunk_edges(engines):
    onnx_engine = engines[1]
    query = onnx_engine.encoder.text(["a noise sound"])
    wave = (synth_clip("tone", 8, 6.0) + synth_clip("noise", 9, 6.0))[None]
    whole = dataclasses.replace(onnx_engine, segment=None).separate_array(wave, query)[0]
    chunked = dataclasses.replace(onnx_engine, segment=2.0, overlap=0.5, batch=2).separate_array(wave, query)[0]
    # every window re-normalises its own spectrogram and the edges see zero padding, so chunking
    # is not bit-exact; the interior of each window agrees closely
    interior = np.zeros(wave.shape[1], dtype=bool)
    for centre in (16000, 32000, 48000, 64000, 80000):
        interior[centre - 4000 : centre + 4000] = True
    assert float(si_sdr_np(chunked[interior], whole[interior])) > 20.0


def test_graphs_hold_no_source_paths(tiny_bundle):
    import onnx

    from marssep_core.serving.export import STACK_TRACE_KEY

    root = str(Path(__file__).resolve().parents[1])
    for path in sorted(tiny_bundle.glob("*.onnx")):
        graph = onnx.load(str(path))
        keys = {prop.key for node in graph.graph.node for prop in node.metadata_props}
        assert STACK_TRACE_KEY not in keys and "namespace" in keys, path.name
        assert root.encode() not in path.read_bytes(), path.name  # the bundle's bytes do not depend on the checkout's place


def test_bundle_integrity_and_backend_mismatch_errors(tiny_separator, tiny_bundle, tmp_path):
    import shutil

    with pytest.raises(CheckpointError, match="PyTorch model file: use --backend torch"):
        load_engine("onnx", tiny_separator)
    with pytest.raises(CheckpointError, match="needs a separator .pt"):
        load_engine("torch", tiny_bundle)
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    with open(copy / "mask.onnx", "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(CheckpointError, match="mask.onnx does not match its checksum"):
        load_engine("onnx", copy)
    shutil.copy(tiny_bundle / "mask.onnx", copy / "mask.onnx")
    (copy / "text.onnx").unlink()
    with pytest.raises(CheckpointError, match="text.onnx is missing"):
        load_engine("onnx", copy)


def test_a_modality_whose_tower_did_not_export_fails_with_its_reason(tiny_bundle, tmp_path):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    info = json.loads((copy / "bundle.json").read_text())
    del info["towers"]["vision"], info["checksums"]["vision.onnx"]
    info["tower_errors"]["vision"] = "TorchExportError: stand-in"
    (copy / "bundle.json").write_text(json.dumps(info))
    engine = load_engine("onnx", copy, device="cpu")
    assert engine.encoder.text(["noise"]).shape[0] == 1
    with pytest.raises(CheckpointError, match="no ONNX vision tower .*stand-in"):
        engine.encoder.image([Image.new("RGB", (8, 8))])


def test_provider_choice():
    assert requested_providers("cpu", [CUDA, CPU]) == [CPU]
    assert requested_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert requested_providers("auto", [CPU]) == [CPU]
    with pytest.raises(ProviderError, match="no CUDA provider"):
        requested_providers("cuda", [CPU])
    with pytest.raises(ProviderError, match="--device must be"):
        requested_providers("tpu", [CPU])


def test_cuda_that_does_not_load_falls_back_on_auto_and_fails_on_cuda(tiny_bundle, monkeypatch, caplog):
    import onnxruntime

    # onnxruntime-gpu without CUDA libraries: CUDA is listed, but sessions come up on the CPU
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, CPU])
    real = onnxruntime.InferenceSession
    monkeypatch.setattr(onnxruntime, "InferenceSession",
                        lambda path, sess_options=None, providers=None: real(path, sess_options, providers=[CPU]))
    session = open_session(tiny_bundle / "mask.onnx", "auto")
    assert session.get_providers()[0] == CPU and "did not load" in caplog.text
    with pytest.raises(ProviderError, match="CUDA provider did not load"):
        open_session(tiny_bundle / "mask.onnx", "cuda")


def test_bundle_check_writes_metrics_and_fails_beyond_tolerance(tiny_separator, tiny_bundle, separator_assets,
                                                                 tmp_path):
    # run_export_stage = export_bundle (the tiny_bundle fixture) + check_bundle; the smoke test runs it whole
    a = separator_assets
    a.pairs.to_csv(tmp_path / "pairs.csv", index=False)
    cfg = ExportConfig(model=str(tiny_separator), parity=ParityConfig(batch_sizes=(2,), frames=(5, 50), real_pairs=3))
    inputs = {"bundle_dir": tiny_bundle, "pairs_path": tmp_path / "pairs.csv", "bank_dir": a.bank, "raw_dir": a.raw,
              "metrics_path": tmp_path / "export.json"}
    metrics = check_bundle(cfg=cfg, **inputs)
    written = json.loads((tmp_path / "export.json").read_text())
    assert written["passed"] and written == json.loads(json.dumps(metrics))
    assert set(written["parity"]) == {f"{k}_max_abs" for k in ("mask_random", "mask_real", "text", "audio", "vision",
                                                                "end_to_end")}
    assert all(v < 1e-4 for v in written["parity"].values()) and written["towers"] == ["audio", "text", "vision"]
    strict = ExportConfig(model=str(tiny_separator), parity=ParityConfig(tolerance=0.0, audio_tolerance=0.0,
                                                                         batch_sizes=(2,), frames=(50,), real_pairs=2))
    with pytest.raises(ParityError, match="beyond tolerance"):
        check_bundle(cfg=strict, **inputs)
    assert json.loads((tmp_path / "export.json").read_text())["passed"] is False


def test_a_model_failure_is_not_reported_as_a_decoding_error(engines, tmp_path):
    class Broken:
        provider = "broken"

        device = torch.device("cpu")

        def masks(self, magnitude, query):
            raise RuntimeError("out of memory in the mask network")

    engine = dataclasses.replace(engines[1], masker=Broken())
    save_audio(tmp_path / "mix.wav", synth_clip("tone", 1, 1.0), 16000)
    with pytest.raises(RuntimeError, match="out of memory") as caught:
        engine.separate_file(tmp_path / "mix.wav", tmp_path / "out.wav", engine.encoder.text(["x"]))
    assert type(caught.value) is RuntimeError and not (tmp_path / "out.wav").exists()


def test_an_ensemble_mask_network_exports_to_one_graph_that_matches_pytorch(tmp_path):
    import onnxruntime

    from marssep_core.separation.model import MaskNetConfig, build_mask_net
    from marssep_core.serving.export import export_mask_graph

    torch.manual_seed(0)
    ensemble = build_mask_net(MaskNetConfig(n_freq=65, query_dim=8, warp_bins=16, downs=2, channels=4, mask_channels=4,
                                            members=2, temperature=1.3)).eval()
    export_mask_graph(ensemble, tmp_path / "mask.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "mask.onnx"), providers=["CPUExecutionProvider"])
    magnitude = torch.exp(torch.randn(3, 65, 29) * 3.0 - 2.0)
    query = F.normalize(torch.randn(3, 8), dim=-1)
    got = session.run(None, {"magnitude": magnitude.numpy(), "query": query.numpy()})[0]
    assert np.abs(got - ensemble.mask(magnitude, query).detach().numpy()).max() < 1e-4
