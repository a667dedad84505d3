"""The GPU check: training, RL, encoder and serving figures plus correctness, in one run.

    bash benchmarks/gpu/run.sh             # on the GPU machine -> benchmarks/results/gpu_<device>.json
    bash benchmarks/gpu/run.sh --dry-run   # CPU, tiny sizes (tests/test_gpu_kit.py runs it)

Everything runs on generated inputs and random weights (``fixtures.py``): the device machine gets
the working tree, not the DVC outputs. Each section is recorded with its wall time; a section that
fails records its error and the rest still run, so one out-of-memory does not cost the others.

- ``separator_step``: the real ``train_loop`` with ``SupervisedTask`` on a fixed batch, per profile
  (default, paper) and bf16 on/off. Seconds per step are the difference between a run of N2 and
  one of N1 steps over N2 - N1 (the loop's one-off costs, its final validation and checkpoint,
  cancel); peak memory of the longer run. Batch preparation on the CPU is timed on its own.
- ``training_input``: the paper-profile step with its batch mixed by the real sampler, in the
  training process and with ``data_workers`` processes drawing ahead (the CPU side of training).
- ``rl_step``: ``train_loop`` with ``RLTask`` at the paper profile (G from params), the reward
  encoder tiny or ``imagebind_huge``-sized (the official audio tower's sizes, random weights).
- ``encoder_throughput``: ``imagebind_huge`` (random weights) forward per modality under bf16.
- ``serving``: ``Engine.separate_array`` over 10 minutes of audio on the PyTorch backend (device)
  at 1 / 8 / 32 windows per pass, and on onnxruntime's CPU provider beside it.
- ``stages_on_device`` (``stages.py``): encoder pretraining and alignment, fusion and the judge
  trained through the loop on the device; the query bank, the judge and separator inference on the
  device against the CPU.
- ``correctness``: loss finite and falling over a few steps on a fixed batch, a step along the RL
  gradient lowers the loss on its own rollout as first order predicts, device masks against a float64 CPU reference.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures  # noqa: E402
from stages import stages_on_device  # noqa: E402

from benchmarks.bench_encoder import measure as encoder_items_per_second  # noqa: E402
from marssep_core.config import AudioConfig, build  # noqa: E402
from marssep_core.encoders.imagebind import ImageBindModel, imagebind_huge, tiny  # noqa: E402
from marssep_core.rl.stage import RLConfig  # noqa: E402
from marssep_core.rl.task import RewardAnchors, RLTask, ValidationSet  # noqa: E402
from marssep_core.separation.data import MixtureSampler  # noqa: E402
from marssep_core.separation.stages import SupervisedConfig, SupervisedTask, build_separator  # noqa: E402
from marssep_core.training.loop import train_loop  # noqa: E402

POLICY_DIM = tiny().out_dim  # the query width of the default (tiny-encoder) separator
DRY_PROFILE = {"train_supervised": {"model": {"warp_bins": 32, "downs": 3, "channels": 4, "mask_channels": 4},
                                    "mixing": {"crop_seconds": 0.5}, "loop": {"batch_size": 2}}}


def _merge(base: dict, overlay: dict) -> dict:
    out = dict(base)
    for key, value in overlay.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def profile_params(profile: str) -> dict:
    """params.yaml with the profile's overlay (``paper``: profiles/paper.yaml; ``dry``: tiny)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if profile == "paper":
        return _merge(params, yaml.safe_load((ROOT / "profiles" / "paper.yaml").read_text()))
    return _merge(params, DRY_PROFILE) if profile == "dry" else params


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 3) if device.type == "cuda" else None


def timed_loop(model: torch.nn.Module, task: Any, loop: Any, counts: tuple[int, int], device: torch.device,
               metric: str) -> dict[str, Any]:
    """Seconds per step of ``train_loop`` from runs of ``counts`` steps (after a 1-step warm-up)."""
    walls, history = {}, []
    for steps in (1, *counts):
        cfg = dataclasses.replace(loop, steps=steps, warmup=1, eval_every=steps, checkpoint_every=steps, device=device.type)
        with tempfile.TemporaryDirectory() as run_dir:
            reset_peak(device)
            sync(device)
            started = time.perf_counter()
            result = run_loop(model=model, task=task, cfg=cfg, run_dir=Path(run_dir), name=f"gpu-check-{steps}", metric=metric)
            sync(device)
            walls[steps] = time.perf_counter() - started
            history = result.history
    seconds = (walls[counts[1]] - walls[counts[0]]) / (counts[1] - counts[0])
    losses = [row["loss"] for row in history]
    return {"step_seconds": round(seconds, 4), "run_walls_s": {str(k): round(v, 3) for k, v in walls.items()},
            "peak_gib": peak_gib(device), "losses_finite": bool(np.all(np.isfinite(losses)))}


def run_loop(model: torch.nn.Module, task: Any, cfg: Any, run_dir: Path, name: str, metric: str) -> Any:
    """``train_loop`` without a history file, as every check here runs it."""
    return train_loop(model=model, task=task, cfg=cfg, run_dir=run_dir, fingerprint=name, selection_metric=metric,
                      history_csv=None, desc=name)


def supervised_task(separator: Any, cfg: SupervisedConfig, audio: AudioConfig, sampler: Any, bank: Any, queries: Any,
                    val_crop_seconds: float) -> SupervisedTask:
    """The supervised stage's task on the synthetic bank, validated on pairs of ``val_crop_seconds``."""
    return SupervisedTask(loss=cfg.loss, stft=separator.stft, audio=audio, sampler=sampler,
                          val_pairs=fixtures.validation_pairs(bank, val_crop_seconds), bank=bank, queries=queries, eval_batch=8)


def supervised_setup(profile: str, seed: int = 0) -> tuple[Any, SupervisedConfig, AudioConfig, Any, Any]:
    params = profile_params(profile)
    audio, cfg = build(AudioConfig, params["audio"]), build(SupervisedConfig, params["train_supervised"])
    # the synthetic classes have no General MIDI program: instrument renders never apply to them
    cfg = dataclasses.replace(cfg, mixing=dataclasses.replace(cfg.mixing, render_prob=0.0))
    bank = fixtures.synthetic_bank(audio.sample_rate, cfg.mixing.crop_seconds + 2.0)
    queries = fixtures.synthetic_queries(bank, POLICY_DIM)
    torch.manual_seed(seed)
    separator = build_separator(cfg.model, audio, POLICY_DIM)
    return separator, cfg, audio, bank, queries


def separator_step(sizes: fixtures.Sizes, device: torch.device, profile: str, bf16: bool) -> dict[str, Any]:
    separator, cfg, audio, bank, queries = supervised_setup(profile)
    sampler = MixtureSampler(bank, queries, "train", cfg.mixing)
    batch = cfg.loop.batch_size
    started = time.perf_counter()
    fixed = fixtures.FixedSampler(sampler, batch)
    prepare = time.perf_counter() - started
    task = supervised_task(separator=separator, cfg=cfg, audio=audio, sampler=fixed, bank=bank, queries=queries,
                           val_crop_seconds=cfg.mixing.crop_seconds)
    loop = dataclasses.replace(cfg.loop, bf16=bf16)
    out = timed_loop(model=separator.mask_net, task=task, loop=loop, counts=sizes.timed_steps, device=device, metric="si_sdri_text")
    return {"profile": profile, "bf16": bf16 and device.type == "cuda", "loss": cfg.loss, "batch": batch,
            "crop_samples": int(round(cfg.mixing.crop_seconds * audio.sample_rate)),
            "parameters": sum(p.numel() for p in separator.parameters()), **out,
            "cpu_batch_preparation_s": round(prepare, 3)}


def training_input(sizes: fixtures.Sizes, device: torch.device, profile: str, workers: int) -> dict[str, Any]:
    """A training step with its batch mixed for it (the real sampler, not a fixed batch): in the
    training process (``workers`` 0) or drawn ahead by ``workers`` processes (``data_workers``)."""
    separator, cfg, audio, bank, queries = supervised_setup(profile)
    sampler = MixtureSampler(bank, queries, "train", cfg.mixing)
    task = supervised_task(separator=separator, cfg=cfg, audio=audio, sampler=sampler, bank=bank, queries=queries,
                           val_crop_seconds=min(1.0, cfg.mixing.crop_seconds))
    loop = dataclasses.replace(cfg.loop, data_workers=workers)
    out = timed_loop(model=separator.mask_net, task=task, loop=loop, counts=sizes.timed_steps, device=device, metric="si_sdri_text")
    return {"profile": profile, "data_workers": workers, "batch": cfg.loop.batch_size,
            "bf16": cfg.loop.bf16 and device.type == "cuda", **out}


def reward_encoder(name: str, device: torch.device) -> ImageBindModel:
    """``tiny`` or the official audio tower's sizes (random weights; text and vision towers shrunk
    to tiny ones, which the reward never runs), built directly on ``device``."""
    cfg = tiny() if name == "tiny" else dataclasses.replace(imagebind_huge(), text=tiny().text, vision=tiny().vision,
                                                             patch_size=tiny().patch_size)
    with torch.device(device):
        return ImageBindModel(cfg)


def rl_setup(sizes: fixtures.Sizes, device: torch.device, profile: str, reward_name: str, overrides: dict | None = None):
    separator, sup, audio, bank, queries = supervised_setup(profile)
    params = profile_params(profile)["rl"]
    params = _merge(params, {"mixing": {"crop_seconds": sup.mixing.crop_seconds, "render_prob": 0.0}, **(overrides or {})})
    cfg = build(RLConfig, params)
    batch = sizes.rl_batch or cfg.loop.batch_size
    encoder = reward_encoder(reward_name, device)
    reward = fixtures.reward_model(encoder).to(device)
    reward_queries = fixtures.synthetic_queries(bank, encoder.cfg.out_dim, seed=1)
    fixed = fixtures.FixedSampler(MixtureSampler(bank, queries, "train", cfg.mixing), batch)
    val = fixtures.validation_pairs(bank, min(1.0, cfg.mixing.crop_seconds))
    separator.to(device)
    anchors = RewardAnchors(reward_queries, bank)
    task = RLTask(separator=separator, cfg=cfg, steps=1000, sampler=fixed, reward=reward, anchors=anchors,
                  val=ValidationSet(pairs=val, bank=bank, queries=queries, reward_queries=reward_queries, reward=reward),
                  judge=fixtures.untrained_judge(queries), eval_batch=8)
    return separator, cfg, task, batch, encoder


def rl_step(sizes: fixtures.Sizes, device: torch.device, profile: str, reward_name: str) -> dict[str, Any]:
    separator, cfg, task, batch, encoder = rl_setup(sizes, device, profile, reward_name)
    loop = dataclasses.replace(cfg.loop, batch_size=batch)
    out = timed_loop(model=separator.mask_net, task=task, loop=loop, counts=sizes.timed_steps, device=device, metric="reward")
    return {"profile": profile, "reward_encoder": reward_name, "group_size": cfg.group_size, "batch": batch,
            "crop_samples": int(round(cfg.mixing.crop_seconds * separator.sample_rate)), "bf16_policy": cfg.loop.bf16 and device.type == "cuda",
            "reward_parameters": sum(p.numel() for p in encoder.modality_trunks["audio"].parameters()), **out}


def encoder_throughput(sizes: fixtures.Sizes, device: torch.device, dry_run: bool) -> dict[str, Any]:
    cfg = tiny() if dry_run else imagebind_huge()
    with torch.device(device):
        model = ImageBindModel(cfg).eval()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    rates = {}
    with autocast:
        for modality in ("audio", "text", "vision"):
            rates[modality] = round(encoder_items_per_second(model, modality, sizes.encoder_batch, sizes.encoder_repeats,
                                                             device.type), 2)
    return {"config": "tiny" if dry_run else "imagebind_huge", "bf16": device.type == "cuda", "batch": sizes.encoder_batch,
            "items_per_second": rates, "parameters": sum(p.numel() for p in model.parameters())}


def serving(sizes: fixtures.Sizes, device: torch.device, work: Path) -> dict[str, Any]:
    from marssep_core.serving.bundle import OnnxMasker
    from marssep_core.serving.engine import Engine, TorchMasker
    from marssep_core.serving.export import export_mask_graph

    profile = "dry" if sizes.profiles == ("dry",) else "default"
    separator, _, audio, bank, queries = supervised_setup(profile)
    seconds = sizes.serving_seconds
    wave = np.resize(bank.waves.astype(np.float32), int(seconds * audio.sample_rate))[None]
    query = queries.text[:1]
    rows = []

    def run(backend: str, masker: Any, batch: int) -> None:
        engine = Engine(masker, None, audio, batch=batch)  # separate_array takes the query embedding: no encoder
        engine.separate_array(wave[:, : 10 * audio.sample_rate * batch], query)  # warm-up: allocator, kernels
        started = time.perf_counter()
        estimate = engine.separate_array(wave, query)
        wall = time.perf_counter() - started
        rows.append({"backend": backend, "provider": masker.provider, "batch": batch, "audio_s": seconds,
                     "wall_s": round(wall, 3), "x_realtime": round(seconds / wall, 1),
                     "finite": bool(np.isfinite(estimate).all())})
        print(json.dumps(rows[-1]), flush=True)

    for batch in sizes.serving_batches:
        run("torch", TorchMasker(separator.mask_net, device.type), batch)
    export_mask_graph(separator.mask_net.cpu(), work / "mask.onnx")
    for batch in sizes.onnx_batches:
        run("onnx", OnnxMasker(work / "mask.onnx", "cpu"), batch)
    breakdown = serving_breakdown(mask_net=separator.mask_net, audio=audio, wave=wave, query=query,
                                  batch=max(sizes.serving_batches), device=device)
    return {"model": f"{profile} profile U-Net (random weights)", "segment_s": 10.0, "rows": rows, "pass_breakdown": breakdown}


def serving_breakdown(mask_net: torch.nn.Module, audio: Any, wave: np.ndarray, query: torch.Tensor, batch: int,
                      device: torch.device, repeats: int = 5) -> dict[str, Any]:
    """Where one forward pass of ``batch`` 10 s windows spends its time on ``device`` (median of
    ``repeats``, synchronised), the mask network's FLOPs and the rate it reaches, and the mask
    network under bf16 autocast and with cuDNN autotuning, the levers a GPU backend could pull."""
    from torch.utils.flop_counter import FlopCounterMode

    from marssep_core.audio.stft import STFT

    stft = STFT.from_config(audio)
    samples = 10 * audio.sample_rate
    windows = np.ascontiguousarray(np.resize(wave[0], batch * samples).reshape(batch, samples))
    net = mask_net.to(device).eval()
    queries = query.to(device).expand(batch, -1).contiguous()

    def timed(job: Callable[[], Any]) -> float:
        walls = []
        for _ in range(repeats + 1):  # the first is a warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            job()
            if device.type == "cuda":
                torch.cuda.synchronize()
            walls.append(time.perf_counter() - started)
        return round(float(np.median(walls[1:])), 5)

    with torch.inference_mode():
        on_device = torch.from_numpy(windows).to(device)
        magnitude, phase = stft.magnitude_phase(on_device)
        mask = net.mask(magnitude, queries).float()
        parts = {"host_to_device": timed(lambda: torch.from_numpy(windows).to(device)),
                 "stft": timed(lambda: stft.magnitude_phase(on_device)),
                 "mask_fp32": timed(lambda: net.mask(magnitude, queries)),
                 "istft": timed(lambda: stft.from_magnitude_phase(mask * magnitude, phase, samples)),
                 "device_to_host": timed(lambda: on_device.cpu().numpy())}
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                parts["mask_bf16_autocast"] = timed(lambda: net.mask(magnitude, queries))
            with torch.backends.cudnn.flags(enabled=True, benchmark=True):
                parts["mask_fp32_cudnn_benchmark"] = timed(lambda: net.mask(magnitude, queries))
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    parts["mask_bf16_cudnn_benchmark"] = timed(lambda: net.mask(magnitude, queries))
        with FlopCounterMode(display=False) as counter:
            net.mask(magnitude[:1], queries[:1])
    flops_per_window = counter.get_total_flops()
    return {"batch": batch, "window_s": 10.0, "seconds": parts, "mask_gflop_per_audio_second": round(flops_per_window / 10.0 / 1e9, 3),
            "mask_fp32_tflop_per_s": round(flops_per_window * batch / parts["mask_fp32"] / 1e12, 2),
            "pass_x_realtime": round(batch * 10.0 / (parts["stft"] + parts["mask_fp32"] + parts["istft"]
                                                     + parts["host_to_device"] + parts["device_to_host"]), 1)}


def correctness(sizes: fixtures.Sizes, device: torch.device) -> dict[str, Any]:
    profile = "dry" if sizes.profiles == ("dry",) else "default"
    separator, cfg, audio, bank, queries = supervised_setup(profile, seed=1)
    fixed = fixtures.FixedSampler(MixtureSampler(bank, queries, "train", cfg.mixing), cfg.loop.batch_size, seed=1)
    task = supervised_task(separator=separator, cfg=cfg, audio=audio, sampler=fixed, bank=bank, queries=queries,
                           val_crop_seconds=cfg.mixing.crop_seconds)
    steps = sizes.correctness_steps
    loop = dataclasses.replace(cfg.loop, steps=steps, warmup=1, lr=1e-3, eval_every=steps, checkpoint_every=steps,
                               device=device.type)
    with tempfile.TemporaryDirectory() as run_dir:
        result = run_loop(model=separator.mask_net, task=task, cfg=loop, run_dir=Path(run_dir), name="gpu-check-fit",
                          metric="si_sdri_text")
        losses = [row["loss"] for row in result.history]
    out = {"supervised_losses": [round(x, 5) for x in losses],
           "supervised_ok": bool(np.all(np.isfinite(losses)) and np.mean(losses[-2:]) < np.mean(losses[:2]))}

    # The RL gradient on its own rollout: a step of length eps along -grad must lower the loss by
    # about eps * |grad| (first order; autograd through the Beta log-densities on the device). The
    # ratio decrease / (eps |grad|) is recorded for three lengths: it shows how far the surrogate
    # stays linear, which one AdamW step at the stage's lr (recorded with its length) far exceeds.
    rl_separator, rl_cfg, rl_task, batch, _ = rl_setup(sizes=sizes, device=device, profile=profile, reward_name="tiny",
                                                       overrides={"inner_epochs": 1000})
    model = rl_separator.mask_net.train()
    rng = np.random.default_rng(0)
    # TF32 off: this compares loss differences of ~1e-5, below TF32's rounding of the convolutions
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        before, scalars = rl_task.loss(model, rng, batch, device)
        model.zero_grad()
        before.backward()
        params = [p for p in model.parameters() if p.grad is not None]
        start = [p.detach().clone() for p in params]
        grad_norm = float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params)))

        def loss_at(step: Callable[[], object]) -> tuple[float, float]:
            with torch.no_grad():
                step()
                value = float(rl_task.loss(model, rng, batch, device)[0])
                distance = float(torch.sqrt(sum(((p - p0).double() ** 2).sum() for p, p0 in zip(params, start))))
                for p, p0 in zip(params, start):
                    p.copy_(p0)
            return value, distance

        linearity = {}
        for eps in (1e-4, 1e-3, 1e-2):
            value, _ = loss_at(lambda: [p.sub_(p.grad, alpha=eps / grad_norm) for p in params])
            linearity[f"{eps:g}"] = round((float(before) - value) / (eps * grad_norm), 3)
        after_adam, adam_distance = loss_at(lambda: torch.optim.AdamW(params, lr=rl_cfg.loop.lr).step())
    out.update({"rl_grad_norm": grad_norm, "rl_decrease_over_first_order_by_step_length": linearity,
                "rl_ok": bool(np.isfinite(float(before)) and 0.5 < linearity["0.001"] < 1.5),
                "rl_reward_finite": bool(np.isfinite(scalars["reward_mean"])),
                "rl_adamw_lr": rl_cfg.loop.lr, "rl_adamw_step_length": adam_distance,
                "rl_loss_change_after_one_adamw_step": after_adam - float(before)})

    # the device's float32 masks against a float64 CPU reference on the same weights and input
    net = separator.mask_net.eval()
    generator = torch.Generator().manual_seed(2)
    magnitude = torch.rand(2, net.cfg.n_freq, 63, generator=generator, dtype=torch.float64) * 2
    query = torch.nn.functional.normalize(torch.randn(2, net.cfg.query_dim, generator=generator, dtype=torch.float64), dim=-1)
    with torch.no_grad():
        reference = net.to("cpu", torch.float64).mask(magnitude, query)
        got = net.to(device, torch.float32).mask(magnitude.float().to(device), query.float().to(device)).double().cpu()
    difference = float((got - reference).abs().max())
    tolerance = 5e-3  # cuDNN convolutions default to TF32 (10-bit mantissa) on Ampere and later
    out.update({"mask_max_abs_diff_vs_float64_cpu": difference, "mask_tolerance": tolerance,
                "mask_ok": difference <= tolerance})
    out["all_ok"] = bool(out["supervised_ok"] and out["rl_ok"] and out["rl_reward_finite"] and out["mask_ok"])
    return out


def environment(device: torch.device) -> dict[str, Any]:
    env = {"device": device.type, "torch": str(torch.__version__), "cuda": torch.version.cuda, "python": platform.python_version(),
           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update({"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                    "multiprocessors": props.multi_processor_count, "cudnn": torch.backends.cudnn.version(),
                    "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32})
    return env


def section(results: dict, name: str, job: Callable[[], Any], key: str | None = None) -> None:
    """Run one measurement; keep its result or its error, with its wall time."""
    started = time.perf_counter()
    try:
        value = job()
    except Exception as err:  # one failed measurement (e.g. out of memory) must not lose the others
        value = {"error": f"{type(err).__name__}: {str(err)[:500]}", "trace": traceback.format_exc()[-1500:]}
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    wall = round(time.perf_counter() - started, 2)
    entry = {**value, "section_wall_s": wall} if isinstance(value, dict) else {"value": value, "section_wall_s": wall}
    results.setdefault(name, {} if key else entry)
    if key:
        results[name][key] = entry
    print(f"[{wall:7.1f} s] {name} {key or ''}: {json.dumps(entry)[:400]}", flush=True)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (the test suite runs this)")
    parser.add_argument("--out", type=Path, default=None, help="result file (default benchmarks/results/gpu_<device>.json)")
    args = parser.parse_args(argv)
    sizes = fixtures.DRY_RUN if args.dry_run else fixtures.FULL
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --dry-run on a CPU machine")
    device = torch.device("cpu" if args.dry_run else "cuda")
    started = time.perf_counter()
    results: dict[str, Any] = {"command": "bash benchmarks/gpu/run.sh" + (" --dry-run" if args.dry_run else ""),
                               "dry_run": args.dry_run, "environment": environment(device)}
    section(results, "correctness", lambda: correctness(sizes, device))
    for profile in sizes.profiles:
        for bf16 in ((True, False) if device.type == "cuda" else (False,)):
            section(results, "separator_step", lambda: separator_step(sizes, device, profile, bf16),
                    f"{profile}_bf16_{'on' if bf16 else 'off'}")
    for workers in sizes.data_workers:
        section(results, "training_input", lambda: training_input(sizes, device, "dry" if args.dry_run else "paper", workers),
                f"data_workers_{workers}")
    rl_profile = "dry" if args.dry_run else "paper"
    for name in sizes.reward_encoders:
        section(results, "rl_step", lambda: rl_step(sizes, device, rl_profile, name), f"{rl_profile}_reward_{name}")
    section(results, "encoder_throughput", lambda: encoder_throughput(sizes, device, args.dry_run))
    section(results, "stages_on_device", lambda: stages_on_device(device, args.dry_run))
    with tempfile.TemporaryDirectory() as work:
        section(results, "serving", lambda: serving(sizes, device, Path(work)))
    results["total_wall_s"] = round(time.perf_counter() - started, 1)
    name = "dryrun_cpu" if args.dry_run else slug(results["environment"]["gpu"])
    out = args.out or ROOT / "benchmarks" / "results" / f"gpu_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out} ({results['total_wall_s']} s)")
    return out


if __name__ == "__main__":
    main()
