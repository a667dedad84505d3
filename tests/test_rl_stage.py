"""The RL reward model, the batched rollout and the ``train_rl`` stage on the tiny corpus."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from marssep_core.config import AudioConfig, build
from marssep_core.encoders.fusion import MLBPFusion
from marssep_core.encoders.preprocess import AudioPreprocessConfig, audio_to_model_input
from marssep_core.encoders.store import load_encoder
from marssep_core.evaluation.judge import (
    JudgeNet,
    JudgeNetConfig,
    TrainedJudge,
    save_judge,
)
from marssep_core.rl.reward import (
    RewardConfig,
    RewardModel,
    RewardWeights,
    batched_audio_input,
    load_mlbp,
)
from marssep_core.rl.stage import RLConfig, RLPaths, hacking_watch, run_rl_stage
from marssep_core.rl.task import RLTask
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.separator import load_separator, save_separator
from marssep_core.separation.stages import UNetParams, build_separator
from marssep_core.torch_utils import save_torch_atomic
from tests.conftest import TINY_RL_PARAMS, TINY_SEPARATOR_PARAMS


@pytest.fixture(scope="module")
def rl_inputs(separator_assets, tmp_path_factory):
    """Files the RL stage reads: a tiny separator, an MLBP module and a judge (untrained)."""
    out = tmp_path_factory.mktemp("rl_inputs")
    torch.manual_seed(0)
    queries = QueryBank.load(separator_assets.queries)
    separator = build_separator(UNetParams(**TINY_SEPARATOR_PARAMS["model"]), AudioConfig(), queries.dim)
    save_separator(out / "sep.pt", separator, queries.encoder, {"stage": "test"})
    fusion = MLBPFusion(queries.dim, 8)
    save_torch_atomic(out / "mlbp.pt", {"format": "marssep-mlbp-v1", "dim": queries.dim, "rank": 8, "state_dict": fusion.state_dict()})
    classes = queries.classes
    judge = TrainedJudge(JudgeNet(JudgeNetConfig(n_classes=len(classes), channels=(4,), embed_dim=8)), classes, queries.texts)
    save_judge(out / "judge.pt", judge, {"seed": 7})
    return out


def test_batched_encoder_input_matches_the_per_clip_preprocessing(separator_assets):
    cfg = AudioPreprocessConfig()
    rng = np.random.default_rng(0)
    for seconds in (1.0, 5.0):
        waves = torch.from_numpy(rng.standard_normal((3, int(seconds * 16000))).astype(np.float32))
        batched = batched_audio_input(waves, cfg)
        for row in range(3):
            single = audio_to_model_input(waves[row], cfg)
            torch.testing.assert_close(batched[row], single[: batched.shape[1]], atol=1e-4, rtol=1e-4)
    encoder, _, _ = load_encoder(separator_assets.encoder)
    reward = RewardModel(encoder, None, RewardConfig(fusion="mean"))
    short = torch.from_numpy(rng.standard_normal((2, 8000)).astype(np.float32))
    per_clip = torch.nn.functional.normalize(encoder.embed("audio", torch.stack([audio_to_model_input(w, cfg) for w in short])), dim=-1)
    torch.testing.assert_close(reward.embed_waves(short), per_clip, atol=1e-5, rtol=1e-4)


def test_rewards_cover_every_group_sample_and_optional_terms(separator_assets, rl_inputs):
    encoder, _, _ = load_encoder(separator_assets.encoder)
    queries = QueryBank.load(separator_assets.queries)
    cfg = RewardConfig(fusion="mlbp", weights=RewardWeights(semantic=1.0, si_sdr=0.5, leakage=0.25))
    reward = RewardModel(encoder, load_mlbp(rl_inputs / "mlbp.pt"), cfg)
    text = queries.text_of(queries.classes[:2])
    anchors = reward.anchors(text, queries.audio[:2], queries.image[:2], torch.tensor([True, False]))
    assert anchors.shape == (2, queries.dim) and torch.allclose(anchors.norm(dim=-1), torch.ones(2))
    waves = torch.randn(3, 2, 8000)
    total, parts = reward(waves, anchors, torch.randn(2, 8000), text.flip(0))
    assert total.shape == (3, 2) and set(parts) == {"semantic", "si_sdr", "leakage"}
    torch.testing.assert_close(total, parts["semantic"] + 0.5 * parts["si_sdr"] + 0.25 * parts["leakage"])
    with pytest.raises(ValueError, match="mlbp"):
        RewardModel(encoder, None, RewardConfig(fusion="mlbp"))


def test_hacking_watch_flags_a_rising_reward_with_a_falling_judge():
    start = {"reward": 0.30, "judge_clap_t": 40.0, "si_sdri_text": 3.0}
    assert hacking_watch(start, {"reward": 0.35, "judge_clap_t": 38.0, "si_sdri_text": 3.0}, 0.5)["diverged"]
    assert not hacking_watch(start, {"reward": 0.35, "judge_clap_t": 41.0, "si_sdri_text": 3.5}, 0.5)["diverged"]
    assert not hacking_watch(start, {"reward": 0.25, "judge_clap_t": 30.0, "si_sdri_text": 1.0}, 0.5)["diverged"]


def _run(separator_assets, rl_inputs, tmp_path, **overrides):
    params = {**TINY_RL_PARAMS, "reward_mlbp": str(rl_inputs / "mlbp.pt"), "reward_encoder": str(separator_assets.encoder), **overrides}
    paths = RLPaths(raw=separator_assets.raw, bank=separator_assets.bank, queries=separator_assets.queries, init=rl_inputs / "sep.pt",
                    judge=rl_inputs / "judge.pt", out=tmp_path / "rl.pt", metrics=tmp_path / "rl.json",
                    history=tmp_path / "history.csv", run_dir=tmp_path / "run")
    return run_rl_stage(cfg=build(RLConfig, params), audio=AudioConfig(), paths=paths)


def test_train_rl_stage_writes_model_metrics_and_history(separator_assets, rl_inputs, tmp_path):
    report = _run(separator_assets, rl_inputs, tmp_path)
    assert report["steps"] == 4 and report["best_trained_step"] in (2, 4) and report["replicas_identical"]
    assert report["best_step"] == (0 if report["kept_start"] else report["best_trained_step"])
    assert set(report["val_start"]) == {"si_sdri_text", "si_sdri_audio", "reward", "reward_semantic", "judge_clap_t", "judge_leakage"}
    assert set(report["reward_hacking"]) == {"delta", "diverged"}
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history["step"]) == [0, 1, 2, 3, 4]
    for column in ("reward_mean", "reward_std", "advantage_std", "clip_fraction", "ratio_min", "ratio_max", "entropy", "kl",
                   "grad_norm", "val_si_sdri_text", "val_judge_clap_t"):
        assert column in history, column
    assert history["ratio_min"].dropna().min() == pytest.approx(1.0) == history["ratio_max"].dropna().max()  # K = 1: pi = pi_old
    separator, info = load_separator(tmp_path / "rl.pt")
    assert info["meta"]["stage"] == "train_rl" and info["meta"]["step"] == report["best_step"]
    assert info["meta"]["vocabulary"] == QueryBank.load(separator_assets.queries).texts
    initial, _ = load_separator(rl_inputs / "sep.pt")
    changed = any(not torch.equal(a, b) for a, b in zip(separator.state_dict().values(), initial.state_dict().values()))
    assert changed != report["kept_start"] and not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize(("trend", "separation_trend"), [(-1.0, 1.0), (1.0, 1.0), (1.0, -1.0)])
def test_the_start_is_kept_unless_a_step_beats_it_without_losing_separation(separator_assets, rl_inputs, tmp_path, monkeypatch,
                                                                            trend, separation_trend):
    """Validation rewards shifted by ``trend`` and text SI-SDRi (the guard) by ``separation_trend``
    per evaluation (the first is the start): a falling reward keeps the start; a rising reward
    serves the last step only while the SI-SDRi does not fall (else the guard vetoes it)."""
    evaluate, calls = RLTask.evaluate, []

    def trending(self, model):
        calls.append(1)
        metrics = evaluate(self, model)
        return {**metrics, "reward": metrics["reward"] + trend * 100.0 * len(calls),
                "si_sdri_text": metrics["si_sdri_text"] + separation_trend * 100.0 * len(calls)}

    monkeypatch.setattr(RLTask, "evaluate", trending)
    report = _run(separator_assets, rl_inputs, tmp_path)
    separator, info = load_separator(tmp_path / "rl.pt")
    initial, _ = load_separator(rl_inputs / "sep.pt")
    same = all(torch.equal(a, b) for a, b in zip(separator.state_dict().values(), initial.state_dict().values()))
    assert report["guard"]["metric"] == "si_sdri_text" and report["guard"]["vetoed"] == (trend > 0 > separation_trend)
    if trend < 0 or separation_trend < 0:
        assert report["kept_start"] and report["best_step"] == 0 == info["meta"]["step"] and same
        assert report["val_best"] == report["val_start"] and report["best_trained_step"] == (2 if trend < 0 else 4)
    else:
        assert not report["kept_start"] and report["best_step"] == 4 == info["meta"]["step"] and not same


def test_no_guard_serves_a_step_that_loses_separation(separator_assets, rl_inputs, tmp_path, monkeypatch):
    evaluate, calls = RLTask.evaluate, []

    def trending(self, model):
        calls.append(1)
        metrics = evaluate(self, model)
        return {**metrics, "reward": metrics["reward"] + 100.0 * len(calls), "si_sdri_text": -100.0 * len(calls)}

    monkeypatch.setattr(RLTask, "evaluate", trending)
    report = _run(separator_assets, rl_inputs, tmp_path, guard="")
    assert not report["kept_start"] and report["best_step"] == 4 and report["guard"] == {"metric": "", "vetoed": False}


def test_inner_epochs_reuse_the_rollout_so_ratios_move(separator_assets, rl_inputs, tmp_path):
    _run(separator_assets, rl_inputs, tmp_path, inner_epochs=2, loop={**TINY_RL_PARAMS["loop"], "lr": 0.01})
    history = pd.read_csv(tmp_path / "history.csv").dropna(subset=["ratio_max"])
    assert (history["ratio_max"] > 1.0).any()  # second epoch on a rollout: the policy has moved from pi_old
    assert history["reward_mean"].iloc[0] == history["reward_mean"].iloc[1]  # same rollout, same rewards


def test_rl_config_rejects_unknown_selection(separator_assets, rl_inputs, tmp_path):
    with pytest.raises(ValueError, match="rl.select"):
        _run(separator_assets, rl_inputs, tmp_path, select="loss")
    with pytest.raises(ValueError, match="rl.guard"):
        _run(separator_assets, rl_inputs, tmp_path, guard="loss")


def test_reward_probe_ranks_draws_as_the_reward_does(separator_assets, rl_inputs, tmp_path):
    from marssep_core.rl.probe import ProbeConfig, run_probe_stage

    def probe(weights: dict, name: str) -> dict:
        params = {**TINY_RL_PARAMS, "reward_mlbp": str(rl_inputs / "mlbp.pt"), "reward_encoder": str(separator_assets.encoder),
                  "reward": {"fusion": "mean", "weights": weights}}
        return run_probe_stage(
            cfg=ProbeConfig(group_size=4, seed=1, patches=((1, 1), (16, 8)), gradient_batches=2),
            rl=build(RLConfig, params),
            raw_dir=separator_assets.raw,
            bank_dir=separator_assets.bank,
            queries_path=separator_assets.queries,
            model=rl_inputs / "sep.pt",
            judge_path=rl_inputs / "judge.pt",
            out_metrics=tmp_path / name,
        )

    pure_si_sdr = probe({"semantic": 0.0, "si_sdr": 1.0, "leakage": 0.0}, "si_sdr.json")
    assert json.loads((tmp_path / "si_sdr.json").read_text()) == json.loads(json.dumps(pure_si_sdr))
    assert set(pure_si_sdr["by_patch"]) == {"1x1", "16x8"}
    for patch, by_corpus in pure_si_sdr["by_patch"].items():
        for corpus, figures in by_corpus.items():
            # a reward that is SI-SDR ranks every group exactly as SI-SDR does, and the clean target first
            assert figures["spearman_reward_si_sdr"]["mean"] == pytest.approx(1.0), (patch, corpus)
            assert figures["target_over_mixture"] == figures["target_over_interferer"] == 1.0
            assert figures["within_group_si_sdr_std_db"]["mean"] > 0  # the draws of a group differ
    semantic = probe({"semantic": 1.0, "si_sdr": 0.0, "leakage": 0.0}, "semantic.json")
    for figures in semantic["by_patch"]["1x1"].values():  # an untrained encoder's reward is not SI-SDR
        assert -1.0 <= figures["spearman_reward_si_sdr"]["mean"] < 0.99
        assert -1.0 <= figures["spearman_gap_si_sdr"]["mean"] <= 1.0
    per_bin, patched = (pure_si_sdr["gradient_by_patch"][key] for key in ("1x1", "16x8"))
    assert per_bin["actions_per_item"] > patched["actions_per_item"] > 0
    for figures in (per_bin, patched):
        assert -1.0 <= figures["cosine"]["mean"] <= 1.0 and figures["grad_norm"]["mean"] > 0 and figures["batches"] == 2


def test_patch_policy_trains_with_ratios_entropy_and_kl_per_patch(separator_assets, rl_inputs, tmp_path):
    report = _run(separator_assets, rl_inputs, tmp_path, patch=[16, 8], inner_epochs=2, loop={**TINY_RL_PARAMS["loop"], "lr": 0.01})
    history = pd.read_csv(tmp_path / "history.csv").dropna(subset=["ratio_max"])
    assert report["steps"] == 4 and (history["ratio_max"] > 1.0).any() and history["entropy"].notna().all()
    with pytest.raises(ValueError, match="rl.patch"):
        _run(separator_assets, rl_inputs, tmp_path, patch=[0, 4])


def test_per_bin_update_loss_is_the_plain_beta_policy_loss():
    """``patch: [1, 1]`` computes exactly the per-bin loss (the paper's policy), term by term."""
    from types import SimpleNamespace

    from marssep_core.rl.objective import mars_loss
    from marssep_core.rl.policy import beta_entropy, beta_kl, beta_log_prob, beta_parameters, sample_masks
    from marssep_core.rl.task import PolicyConfig, RLTask, Rollout

    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    model = lambda magnitude, query: net(magnitude[:, None])[:, 0]  # noqa: E731 (the mask net's call signature)
    magnitude = torch.rand(2, 9, 6)
    old = torch.sigmoid(model(magnitude, None)).detach()
    masks = sample_masks(old, 9.0, 3, torch.Generator().manual_seed(1))
    advantages = torch.randn(3, 2)
    rollout = Rollout(magnitude=magnitude, query=torch.zeros(2, 4), old_pooled=old, actions=masks, advantages=advantages,
                      scalars={}, kappa=9.0)
    with torch.no_grad():
        net.weight.add_(0.05)  # the current policy differs from the old one
    loss, _ = RLTask.update_loss(SimpleNamespace(cfg=PolicyConfig(patch=(1, 1))), model, rollout, torch.device("cpu"))
    alpha, beta = beta_parameters(torch.sigmoid(model(magnitude, None)), 9.0)
    old_alpha, old_beta = beta_parameters(old, 9.0)
    expected = mars_loss(log_prob=beta_log_prob(masks, alpha[None], beta[None]),
                         old_log_prob=beta_log_prob(masks, old_alpha[None], old_beta[None]), advantages=advantages,
                         entropy=beta_entropy(alpha, beta), kl=beta_kl(alpha, beta, old_alpha, old_beta), clip_eps=0.2,
                         entropy_coef=0.0, kl_coef=0.01)
    assert torch.equal(loss, expected.loss)


def test_patch_masks_share_one_action_per_patch_and_keep_the_proposal_at_its_mode():
    from marssep_core.rl.policy import sample_masks, sample_patch_masks

    proposal = torch.rand(2, 20, 11, generator=torch.Generator().manual_seed(0)).clamp(0.05, 0.95)
    masks, actions = sample_patch_masks(
        proposal=proposal, kappa=9.0, group_size=3, patch=(8, 4), generator=torch.Generator().manual_seed(1)
    )
    assert masks.shape == (3, 2, 20, 11) and actions.shape == (3, 2, 3, 3)
    logit_shift = torch.logit(masks) - torch.logit(proposal)[None]
    block = logit_shift[:, :, 8:16, 4:8]  # one full patch: every bin moved by the same offset
    torch.testing.assert_close(block, block[:, :, :1, :1].expand_as(block), atol=1e-4, rtol=0)
    assert not torch.allclose(logit_shift[:, :, :8, :4].mean(), logit_shift[:, :, 8:16, 4:8].mean())
    # larger patches: draws differ more across a group than per-bin draws do, once averaged over the mask
    per_bin = sample_masks(proposal, 9.0, 64, torch.Generator().manual_seed(2))
    patched, _ = sample_patch_masks(proposal=proposal, kappa=9.0, group_size=64, patch=(8, 4), generator=torch.Generator().manual_seed(2))
    assert patched.mean(dim=(2, 3)).std(dim=0).mean() > 2 * per_bin.mean(dim=(2, 3)).std(dim=0).mean()
