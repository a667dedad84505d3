"""Mask network, Separator, losses, signal metrics and overlap-add on tiny models and generated audio."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from marssep_core.audio.overlap_add import StreamingOverlapAdd, overlap_add
from marssep_core.audio.signal import ideal_ratio_mask, pair_si_sdri, si_sdr, si_sdr_np
from marssep_core.audio.stft import STFT
from marssep_core.config import AudioConfig
from marssep_core.separation.data import MixBatch
from marssep_core.separation.losses import binary_target_mask, negative_si_sdr, ratio_target_mask, weighted_bce
from marssep_core.separation.model import (
    LOG_FLOOR,
    MaskEnsemble,
    MaskNetConfig,
    MaskUNet,
    build_mask_net,
    query_head,
    standardize,
    warp_matrices,
    warp_positions,
)
from marssep_core.separation.separator import Separator, load_separator, save_separator
from marssep_core.separation.stages import SupervisedTask

TINY = MaskNetConfig(n_freq=65, query_dim=8, warp_bins=16, downs=2, channels=4, mask_channels=4)
AUDIO = AudioConfig(sample_rate=8000, n_fft=128, win_length=128, hop_length=32)


@pytest.mark.parametrize("scale", ["log", "mel"])
def test_warp_matrices_average_and_interpolate(scale):
    to_warped, to_linear = warp_matrices(513, 128, scale)
    assert to_warped.shape == (128, 513) and to_linear.shape == (513, 128)
    torch.testing.assert_close(to_warped.sum(1), torch.ones(128))
    torch.testing.assert_close(to_linear.sum(1), torch.ones(513))
    # a smooth spectrum survives the round trip; low bins are kept almost exactly
    smooth = torch.linspace(0.0, 1.0, 513) ** 2
    error = (to_linear @ (to_warped @ smooth) - smooth).abs()
    assert error[:100].max() < 1e-3 and error.max() < 0.05  # the top triangle is one-sided


def test_the_mel_warp_spends_no_bins_closer_than_one_linear_bin_and_reaches_higher_frequencies_sooner():
    log_positions, mel_positions = warp_positions(513, 128, "log"), warp_positions(513, 128, "mel")
    for positions in (log_positions, mel_positions):
        assert positions[0] == 0.0 and abs(positions[-1] - 512.0) < 1e-9 and bool((positions.diff() > 0).all())
    assert int((log_positions.diff() < 1.0).sum()) == 61  # the log warp oversamples the bottom 19 bins
    assert 1.0 <= float(mel_positions.diff().min()) < 1.01

    def between_1_and_4_khz(positions: torch.Tensor) -> int:
        """Warped bins between linear bins 64 and 256: above its corner the mel warp is finer."""
        return int(((positions > 64) & (positions < 256)).sum())

    assert between_1_and_4_khz(mel_positions) > 1.5 * between_1_and_4_khz(log_positions)
    with pytest.raises(ValueError, match="warp_scale"):
        dataclasses.replace(TINY, warp_scale="linear")
    # model files written before the option existed hold no warp_scale: they keep the log warp
    written_before = {key: value for key, value in dataclasses.asdict(TINY).items() if key != "warp_scale"}
    assert MaskNetConfig(**written_before).warp_scale == "log"


@pytest.mark.parametrize("cfg", [TINY, MaskNetConfig(n_freq=65, query_dim=8, warp_bins=0, downs=2, channels=4, mask_channels=4, film=False),
                                 dataclasses.replace(TINY, input_skip=True, active_norm=True),
                                 dataclasses.replace(TINY, warp_scale="mel")])
@pytest.mark.parametrize("frames", [9, 16, 1])
def test_mask_net_shapes_and_range(cfg, frames):
    net = MaskUNet(cfg)
    magnitude = torch.rand(3, cfg.n_freq, frames)
    mask = net.mask(magnitude, torch.randn(3, cfg.query_dim))
    assert mask.shape == (3, cfg.n_freq, frames)
    assert mask.min() >= 0 and mask.max() <= 1


@pytest.mark.parametrize("shape", [(1, 32, 128, 320), (4, 32, 128, 64), (3, 16, 32, 33), (8, 32, 128, 256)])
def test_query_head_is_bit_identical_to_the_einsum_forward_and_backward(shape):
    """The head was ``einsum("bkft,bk->bft")``; trained models must not change with its form."""
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(shape, generator=generator, requires_grad=True)
    weights = torch.randn(shape[0], shape[1] + 1, generator=generator, requires_grad=True)
    reference = torch.einsum("bkft,bk->bft", features, weights[:, :-1]) + weights[:, -1, None, None]
    ours = query_head(features, weights)
    assert torch.equal(ours, reference)
    for a, b in zip(torch.autograd.grad(reference.square().sum(), (features, weights)),
                    torch.autograd.grad(ours.square().sum(), (features, weights))):
        assert torch.equal(a, b)


def test_the_query_changes_the_mask():
    torch.manual_seed(0)
    net = MaskUNet(TINY)
    magnitude = torch.rand(1, TINY.n_freq, 16)
    first = net(magnitude, torch.randn(1, TINY.query_dim))
    second = net(magnitude, torch.randn(1, TINY.query_dim))
    assert not torch.allclose(first, second)


def test_weighted_bce_prefers_the_right_mask():
    target, interferer = torch.rand(2, 65, 10) * torch.tensor([3.0, 1.0])[:, None, None]
    mixture = target + interferer
    right = (binary_target_mask(target, mixture) * 2 - 1) * 8  # confident logits of the right mask
    assert weighted_bce(right, target, mixture) < 0.01 < weighted_bce(-right, target, mixture)


def test_ratio_bce_is_smallest_at_the_ratio_mask():
    target, interferer = torch.rand(2, 65, 10)
    mixture = target + interferer
    ratio = ratio_target_mask(target, mixture)
    assert float(ratio.min()) >= 0.0 and float(ratio.max()) <= 1.0
    torch.testing.assert_close(ratio, target / mixture)
    exact = torch.logit(ratio.clamp(1e-4, 1 - 1e-4))
    at_ratio = weighted_bce(exact, target, mixture, ratio_target=True)
    for shift in (-1.0, 1.0):
        assert at_ratio < weighted_bce(exact + shift, target, mixture, ratio_target=True)
    # the binary loss prefers a harder mask than the ratio one
    assert weighted_bce(exact * 4, target, mixture) < weighted_bce(exact, target, mixture)


def test_negative_si_sdr_is_clipped_on_both_sides():
    torch.manual_seed(0)
    target, noise = torch.randn(2, 3, 800)
    silent = torch.zeros(3, 800)  # about -80 dB whatever the estimate: clipped, not dominating
    assert float(negative_si_sdr(noise, silent)) == 30.0
    assert float(negative_si_sdr(target, target)) == -30.0  # solved: capped
    middle = target + 0.3 * noise
    torch.testing.assert_close(negative_si_sdr(middle, target), -si_sdr(middle, target).mean())


def test_bce_si_sdr_adds_the_weighted_waveform_loss_to_the_bce():
    torch.manual_seed(0)
    net, stft = MaskUNet(TINY), STFT.from_config(AUDIO)
    target, interferer = torch.randn(2, 3, 1024)
    batch = MixBatch(mixture=target + interferer, target=target, interferer=interferer, query=torch.randn(3, TINY.query_dim),
                     target_class=["a"] * 3, interferer_class=["b"] * 3)

    def loss_of(name: str, weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
        task = SupervisedTask(loss=name, stft=stft, audio=AUDIO, sampler=None, val_pairs=None, bank=None, queries=None,
                              eval_batch=1, si_sdr_weight=weight)
        return task.loss_on(net, batch, torch.device("cpu"))

    combined, parts = loss_of("bce_si_sdr", 0.25)
    bce, waveform = loss_of("bce")[0], loss_of("si_sdr")[0]
    assert parts == pytest.approx({"bce": float(bce), "neg_si_sdr": float(waveform)})
    torch.testing.assert_close(combined, bce + 0.25 * waveform)
    with pytest.raises(ValueError, match="bce_si_sdr"):
        loss_of("sdr")


def test_si_sdr_is_scale_invariant_and_improvement_is_relative_to_the_mixture():
    rng = torch.Generator().manual_seed(0)
    target, noise = torch.randn(2, 4000, generator=rng)
    assert si_sdr(target * 3.0, target) > 60
    torch.testing.assert_close(si_sdr(target + 0.1 * noise, target), si_sdr(5 * (target + 0.1 * noise), target))
    mixture, estimate = (target + noise).numpy()[None], (target + 0.1 * noise).numpy()[None]
    reference = target.numpy()[None]
    score, improvement = pair_si_sdri(estimate, reference, si_sdr_np(mixture, reference))
    assert abs(float(pair_si_sdri(mixture, reference, si_sdr_np(mixture, reference))[1][0])) < 1e-9
    assert improvement[0] == pytest.approx(score[0] - si_sdr_np(mixture, reference)[0]) and improvement[0] > 15


def test_oracle_ratio_mask_separates_two_tones():
    stft = STFT.from_config(AUDIO)
    t = torch.arange(8000) / 8000
    target, interferer = torch.sin(2 * np.pi * 440 * t), 0.8 * torch.sin(2 * np.pi * 1900 * t)
    mixture = target + interferer
    magnitude, phase = stft.magnitude_phase(mixture)
    mask = ideal_ratio_mask(stft.forward(target).abs(), stft.forward(interferer).abs())
    estimate = stft.from_magnitude_phase(mask * magnitude, phase, 8000)
    reference = target.numpy()[None]
    assert pair_si_sdri(estimate.numpy()[None], reference, si_sdr_np(mixture.numpy()[None], reference))[1][0] > 15


def test_the_temperature_divides_the_logits_and_travels_in_the_model_file(tmp_path):
    torch.manual_seed(0)
    plain = MaskUNet(TINY)
    soft = MaskUNet(dataclasses.replace(TINY, temperature=2.0))
    soft.load_state_dict(plain.state_dict())
    magnitude, query = torch.rand(2, TINY.n_freq, 9), torch.randn(2, TINY.query_dim)
    torch.testing.assert_close(soft(magnitude, query), plain(magnitude, query) / 2.0)
    save_separator(tmp_path / "sep.pt", Separator(soft, AUDIO), {"path": "enc.pt", "md5": "x"}, {"stage": "test"})
    assert load_separator(tmp_path / "sep.pt")[0].mask_net.cfg.temperature == 2.0


def test_separator_round_trips_through_its_model_file(tmp_path):
    torch.manual_seed(0)
    separator = Separator(MaskUNet(TINY), AUDIO).eval()
    save_separator(tmp_path / "sep.pt", separator, {"path": "enc.pt", "md5": "x"}, {"stage": "test"})
    loaded, info = load_separator(tmp_path / "sep.pt")
    mixture, query = torch.randn(2, 4000), torch.randn(2, TINY.query_dim)
    torch.testing.assert_close(loaded(mixture, query), separator(mixture, query))
    assert loaded.sample_rate == 8000 and info["encoder"]["path"] == "enc.pt"
    assert info["meta"]["stage"] == "test" and "torch" in info["meta"]
    payload = torch.load(tmp_path / "sep.pt", weights_only=True)
    assert payload["config"]["warp_bins"] == 16 and payload["audio"]["sample_rate"] == 8000


def test_an_ensemble_averages_the_logits_of_members_initialised_apart(tmp_path):
    torch.manual_seed(0)
    ensemble = build_mask_net(dataclasses.replace(TINY, members=3, temperature=2.0))
    assert isinstance(ensemble, MaskEnsemble) and isinstance(build_mask_net(TINY), MaskUNet)
    first, second = (dict(net.named_parameters())["downs.0.conv.weight"] for net in ensemble.members[:2])
    assert not torch.equal(first, second)
    assert all(net.cfg.temperature == 1.0 and net.cfg.members == 1 for net in ensemble.members)
    magnitude, query = torch.rand(2, TINY.n_freq, 9), torch.randn(2, TINY.query_dim)
    mean = sum(net(magnitude, query) for net in ensemble.members) / 3
    torch.testing.assert_close(ensemble.mask(magnitude, query), torch.sigmoid(mean / 2.0))
    torch.testing.assert_close(ensemble(magnitude, query, per_member=True).mean(dim=0), mean)
    single = build_mask_net(TINY)
    assert torch.equal(single(magnitude, query, per_member=True)[0], single(magnitude, query))
    separator = Separator(ensemble, AUDIO).eval()
    save_separator(tmp_path / "sep.pt", separator, {"path": "enc.pt", "md5": "x"}, {"stage": "test"})
    loaded, _ = load_separator(tmp_path / "sep.pt")
    mixture = torch.randn(2, 4000)
    torch.testing.assert_close(loaded(mixture, query), separator(mixture, query))
    assert torch.load(tmp_path / "sep.pt", weights_only=True)["model"] == "MaskEnsemble"
    with pytest.raises(ValueError, match="MaskEnsemble"):
        MaskUNet(dataclasses.replace(TINY, members=2))


def test_runs_averaged_by_the_benchmark_flatten_ensembles_and_leave_each_run_as_it_was(monkeypatch):
    """``benchmarks/ensemble_of_runs.py`` joins trained runs, two-U-Net runs included, into one
    ensemble: each U-Net at its run's temperature, the runs themselves unchanged (each is also
    the baseline it is compared with); ``--members`` keeps one U-Net of a run."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(folder))  # the script imports its folder's helpers
    spec = importlib.util.spec_from_file_location("ensemble_of_runs", folder / "ensemble_of_runs.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    torch.manual_seed(0)
    pair = Separator(build_mask_net(dataclasses.replace(TINY, members=2, temperature=1.5)), AUDIO).eval()
    single = Separator(build_mask_net(dataclasses.replace(TINY, temperature=1.2)), AUDIO).eval()
    magnitude, query = torch.rand(2, TINY.n_freq, 9), torch.randn(2, TINY.query_dim)
    with torch.no_grad():
        pair_logits, single_logits = pair.mask_net(magnitude, query), single.mask_net(magnitude, query)
        joined = benchmark.ensemble_of([pair, pair])
        torch.testing.assert_close(joined.mask_net(magnitude, query), pair_logits)
        three = benchmark.ensemble_of([pair, single])
        assert len(three.mask_net.members) == 3
        expected = (2 * pair_logits + single_logits) / 3  # each U-Net's logits over its run's T
        torch.testing.assert_close(three.mask_net(magnitude, query), expected)
        torch.testing.assert_close(pair.mask_net(magnitude, query), pair_logits)
        second = pair.mask_net.members[1](magnitude, query) / 1.5
        picked = benchmark.ensemble_of([pair, single], ["1", "all"])  # --members 1 all
        assert len(picked.mask_net.members) == 2
        torch.testing.assert_close(picked.mask_net(magnitude, query), (second + single_logits) / 2)
    assert all(member.cfg.temperature == 1.0 for member in pair.mask_net.members)
    for bad in (["2", "all"], ["0"], ["first", "all"]):
        with pytest.raises(ValueError, match="--members"):
            benchmark.ensemble_of([pair, single], bad)


def test_each_member_of_an_ensemble_learns_from_its_own_loss():
    """The ensemble's training loss is the mean of its members' losses, so each member's gradient
    is (1 / members of) what it gets trained alone on the same batch: independent models."""
    torch.manual_seed(0)
    ensemble, stft = build_mask_net(dataclasses.replace(TINY, members=2)), STFT.from_config(AUDIO)
    target, interferer = torch.randn(2, 3, 1024)
    batch = MixBatch(mixture=target + interferer, target=target, interferer=interferer, query=torch.randn(3, TINY.query_dim),
                     target_class=["a"] * 3, interferer_class=["b"] * 3)
    task = SupervisedTask(loss="bce_si_sdr", stft=stft, audio=AUDIO, sampler=None, val_pairs=None, bank=None, queries=None,
                          eval_batch=1, si_sdr_weight=0.02)
    loss, parts = task.loss_on(ensemble, batch, torch.device("cpu"))
    alone = [task.loss_on(net, batch, torch.device("cpu")) for net in ensemble.members]
    torch.testing.assert_close(loss, (alone[0][0] + alone[1][0]) / 2)
    assert parts["bce"] == pytest.approx((alone[0][1]["bce"] + alone[1][1]["bce"]) / 2)
    loss.backward()
    together = [p.grad.clone() for p in ensemble.members[0].parameters()]
    ensemble.zero_grad()
    alone[0][0].backward()
    for joint, single in zip(together, ensemble.members[0].parameters()):
        torch.testing.assert_close(joint, single.grad / 2)


def test_under_bf16_autocast_the_frequency_warp_and_the_mask_head_stay_float32():
    torch.manual_seed(0)
    net = MaskUNet(TINY)
    magnitude, query = torch.rand(2, TINY.n_freq, 12) + 0.01, torch.randn(2, TINY.query_dim)
    seen = []
    net.downs[0].register_forward_hook(lambda module, inputs, output: seen.append((inputs[0].dtype, output.dtype)))
    exact = net(magnitude, query)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = net(magnitude, query)
    assert seen == [(torch.float32, torch.float32), (torch.float32, torch.bfloat16)]  # the warped input; the convolutions
    assert mixed.dtype == torch.float32 and not torch.equal(mixed, exact)
    torch.testing.assert_close(mixed, exact, atol=0.1, rtol=0.05)


def test_split_batches_give_each_member_the_loss_of_its_own_share():
    """``member_batches="split"``: member ``i`` learns from the ``i``-th half of the batch alone, and
    a one-network model's split is its whole batch."""
    torch.manual_seed(0)
    ensemble, stft = build_mask_net(dataclasses.replace(TINY, members=2)), STFT.from_config(AUDIO)
    target, interferer = torch.randn(2, 4, 1024)
    batch = MixBatch(mixture=target + interferer, target=target, interferer=interferer, query=torch.randn(4, TINY.query_dim),
                     target_class=["a"] * 4, interferer_class=["b"] * 4)

    def task(member_batches: str) -> SupervisedTask:
        return SupervisedTask(loss="bce_si_sdr", stft=stft, audio=AUDIO, sampler=None, val_pairs=None, bank=None, queries=None,
                              eval_batch=1, si_sdr_weight=0.02, member_batches=member_batches)

    def rows(start: int) -> MixBatch:
        return MixBatch(mixture=batch.mixture[start:start + 2], target=batch.target[start:start + 2],
                        interferer=batch.interferer[start:start + 2], query=batch.query[start:start + 2],
                        target_class=["a"] * 2, interferer_class=["b"] * 2)

    loss, _ = task("split").loss_on(ensemble, batch, torch.device("cpu"))
    alone = [task("shared").loss_on(net, rows(2 * i), torch.device("cpu"))[0] for i, net in enumerate(ensemble.members)]
    torch.testing.assert_close(loss, (alone[0] + alone[1]) / 2)
    single = ensemble.members[0]
    torch.testing.assert_close(task("split").loss_on(single, batch, torch.device("cpu"))[0],
                               task("shared").loss_on(single, batch, torch.device("cpu"))[0])
    odd = MixBatch(mixture=batch.mixture[:3], target=batch.target[:3], interferer=batch.interferer[:3], query=batch.query[:3],
                   target_class=["a"] * 3, interferer_class=["b"] * 3)
    with pytest.raises(ValueError, match="does not split among 2 members"):
        task("split").loss_on(ensemble, odd, torch.device("cpu"))


def test_load_separator_names_the_file_when_it_is_not_a_model(tmp_path):
    from marssep_core.torch_utils import CheckpointError

    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_separator(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_separator(tmp_path / "absent.pt")


@pytest.mark.parametrize("length", [100, 1000, 1001, 4097])
def test_overlap_add_of_the_identity_is_the_identity(length):
    wave = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    calls = []

    def identity(window):
        calls.append(window.shape)
        return window

    out = overlap_add(identity, wave, segment=256, overlap=0.25)
    np.testing.assert_allclose(out, wave, rtol=1e-5, atol=1e-6)
    assert all(shape == (2, 256) for shape in calls) or length <= 256


def test_streaming_overlap_add_of_one_long_block_emits_as_it_goes():
    """A whole input pushed at once (``Engine.separate_array``) must not pile its output up until
    the end: that made 10 minutes cost 80 copies of a growing buffer (docs/gpu.md)."""
    segment, batch = 256, 4
    stream = StreamingOverlapAdd(lambda w: w, channels=1, segment=segment, overlap=0.25, batch=batch)
    sizes = []
    original_run = stream._run

    def run_and_record():
        original_run()
        sizes.append(stream.output.shape[1])

    stream._run = run_and_record
    wave = np.random.default_rng(0).standard_normal((1, 100 * segment)).astype(np.float32)
    out = np.concatenate([stream.push(wave), stream.finish()], axis=1)
    np.testing.assert_allclose(out, wave, atol=1e-6)
    assert len(sizes) > 30 and max(sizes) <= segment + batch * stream.hop


@pytest.mark.parametrize("length", [5, 255, 256, 257, 1001, 5000])
def test_streaming_overlap_add_equals_one_shot_for_any_block_size_and_batch(length):
    wave = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)

    def nonlinear(window):  # position-dependent, so a misplaced window would show
        return np.tanh(3.0 * window) + 0.1 * window.mean() + np.linspace(0.0, 0.01, window.shape[-1])

    expected = overlap_add(nonlinear, wave, segment=256, overlap=0.25)
    windows_seen = []
    for batch in (1, 3):
        for block in (1, 7, 100, 10_000):
            def batched(windows):
                windows_seen.append(windows.shape[0])
                return np.stack([nonlinear(w) for w in windows])

            stream = StreamingOverlapAdd(batched, channels=2, segment=256, overlap=0.25, batch=batch)
            pieces = [stream.push(wave[:, i : i + block]) for i in range(0, length, block)] + [stream.finish()]
            np.testing.assert_allclose(np.concatenate(pieces, axis=1), expected, atol=1e-6)
    if length == 5000:  # 26 windows: full batches of 3 reach the model
        assert max(windows_seen) == 3


def test_active_norm_ignores_zero_padding():
    """With ``active_only`` a sound padded with digital silence is standardised as it is alone;
    the plain standardisation shifts it by the silence's weight."""
    sound = torch.log(torch.rand(2, 1, 65, 16) + 0.1)
    padded = torch.cat([sound, torch.full((2, 1, 65, 16), LOG_FLOOR)], dim=-1)
    torch.testing.assert_close(standardize(padded, active_only=True)[..., :16], standardize(sound, active_only=True))
    assert (standardize(padded, active_only=False)[..., :16] - standardize(sound, active_only=False)).abs().max() > 0.5
    alone = standardize(sound, active_only=True)
    torch.testing.assert_close(alone.mean(dim=(2, 3)), torch.zeros(2, 1), atol=1e-5, rtol=0)
