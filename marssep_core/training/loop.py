"""The one training loop: encoder pretraining and alignment, MLBP fusion, the judge, supervised
separator pretraining and RL fine-tuning all run through ``train_loop``.

A ``Task`` supplies the loss of one step and the validation metrics; the loop owns everything
else: device choice, bf16 autocast on GPU (and, with ``cpu_bf16``, on a CPU with native bf16), DDP
(``torchrun``; gloo on CPU, NCCL on GPU), AdamW with linear warmup and cosine decay, gradient
clipping, best-checkpoint selection on a validation metric (from ``select_from_fraction`` of the
steps on), a per-step history, and crash safety:

- every ``checkpoint_every`` steps rank 0 writes ``run_dir/last.pt`` atomically (model, optimizer,
  scheduler, step, best weights, history); a killed run started again resumes from it;
- a step's data comes from ``np.random.default_rng([seed, step, rank])``, so a resumed run draws
  exactly the batches the uninterrupted run would have drawn (and worker processes, with
  ``data_workers``, draw those same batches ahead: ``prefetch.py``); torch's own generator
  (dropout, stochastic depth) is seeded from the same triple at every step, for the same reason;
- the checkpoint carries a fingerprint of the configuration; a run with different settings
  starts over instead of resuming someone else's state.

With ``ema_decay`` > 0 the loop also keeps an exponential moving average of the weights, and
validation, best-checkpoint selection and the returned best weights use the average (the raw
weights keep training): one validation then judges where the last few hundred steps have been,
not the last step's noise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import sys
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from marssep_core.io_utils import write_table_atomic
from marssep_core.torch_utils import autocast_dtype, resolve_device, save_torch_atomic, warmup_cosine
from marssep_core.training.prefetch import BatchPrefetcher

log = logging.getLogger(__name__)

CHECKPOINT = "last.pt"


@dataclass(frozen=True)
class LoopConfig:
    """Optimisation and bookkeeping of one training run (``batch_size`` is global: each of the
    ``world_size`` processes draws ``batch_size // world_size`` items)."""

    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 50
    grad_clip: float = 1.0
    eval_every: int = 250
    checkpoint_every: int = 50
    device: str = "auto"  # cpu | cuda | auto
    bf16: bool = True  # autocast on CUDA
    # autocast on a CPU with native bf16 (avx512_bf16 / amx_bf16; float32 on other CPUs, where it is emulated)
    cpu_bf16: bool = False
    seed: int = 0
    data_workers: int = 0  # processes drawing batches ahead (prefetch.py; same batches); 0: in the loop
    ema_decay: float = 0.0  # > 0: validate and keep the moving average of the weights (WeightAverage); 0: off
    # validations before this fraction of ``steps`` are logged but never kept as the best weights: on a
    # small validation set an early, high-learning-rate peak is more often noise than a better model
    # (docs/separator.md, "Checkpoint selection"); 0: every validation competes
    select_from_fraction: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.select_from_fraction <= 1.0:
            raise ValueError(f"loop.select_from_fraction must lie in [0, 1], got {self.select_from_fraction}")

    @property
    def first_selectable_step(self) -> int:
        """The first step whose validation may become the best (the last step always may)."""
        # rounded first: 0.07 * 100 is 7.000000000000001 in floating point, and step 7 must count
        return math.ceil(round(self.select_from_fraction * self.steps, 9))


class Task(Protocol):
    """What a recipe trains. A task that also has ``draw(rng, batch_size) -> batch`` and
    ``loss_on(model, batch, device)`` (with ``loss = loss_on(draw(rng))``) can have its batches drawn
    in worker processes (``LoopConfig.data_workers``).

    Optional, where a recipe needs them:
    - ``param_groups(model) -> list[dict]``: AdamW parameter groups (default: every parameter
      with ``weight_decay``); a group with ``"clip": False`` is left out of gradient clipping
      (a learnable temperature, say), and frozen parameters are simply not listed;
    - ``train_mode(model)``: put the model in training mode (default ``model.train()``; frozen
      trunks may stay in eval mode);
    - ``find_unused_parameters = True``: some trainable parameters get no gradient on some steps
      (a modality absent from a batch), which DDP must be told.
    """

    def loss(
        self, model: nn.Module, rng: np.random.Generator, batch_size: int, device: torch.device
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one step on a fresh batch, and the scalars to log."""

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics (called on rank 0 only, in eval mode, without gradients)."""


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group ``torchrun`` describes in the environment (no-op for one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


@dataclass
class LoopResult:
    best_state: dict[str, torch.Tensor]
    best_step: int
    best_score: float
    history: list[dict[str, float]] = field(default_factory=list)
    dist: Distributed = field(default_factory=Distributed)
    replica_digests: list[str] = field(default_factory=list)  # final weights of each rank


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names and bytes of a state dict."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def step_seed(seed: int, step: int, rank: int) -> int:
    """torch's seed for one step: independent of the step's numpy generator (whose draws it
    leaves untouched) and a function of the same triple, so a resumed step repeats its dropout."""
    return int(np.random.SeedSequence([seed, step, rank, 1]).generate_state(1)[0])


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


class WeightAverage:
    """Exponential moving average of a model's floating-point weights; other buffers (counters) are
    copied. The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the
    first steps' weights (far from any optimum) fade out quickly (TensorFlow's ExponentialMovingAverage
    with num_updates ramps the same way)."""

    def __init__(self, model: nn.Module, decay: float, state: dict[str, Any] | None = None):
        self.decay = decay
        self.updates = 0 if state is None else int(state["updates"])
        source = model.state_dict() if state is None else state["weights"]
        device = next(iter(model.state_dict().values())).device
        self.weights = {k: v.detach().to(device).clone() for k, v in source.items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                self.weights[key].lerp_(value.detach(), 1.0 - decay)
            else:
                self.weights[key].copy_(value)

    @contextlib.contextmanager
    def applied(self, model: nn.Module):
        """``model`` holds the averaged weights inside the block, its own weights again after it."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.weights)
        try:
            yield
        finally:
            model.load_state_dict(own)

    def state(self) -> dict[str, Any]:
        return {"updates": self.updates, "weights": {k: v.detach().cpu().clone() for k, v in self.weights.items()}}


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CHECKPOINT
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def train_loop(
    model: nn.Module,
    task: Task,
    cfg: LoopConfig,
    run_dir: Path,
    fingerprint: str,
    selection_metric: str,
    history_csv: Path | None = None,
    desc: str = "train",
) -> LoopResult:
    """Train ``model`` in place on ``task`` (it ends with the final weights); return the best
    weights (by ``selection_metric``, higher is better) and the history. Resumes from ``run_dir/last.pt`` when its
    fingerprint matches."""
    device = resolve_device(cfg.device)
    ranks = init_distributed(device)
    if device.type == "cuda" and ranks.world_size > 1:
        device = torch.device("cuda", ranks.local_rank)
    if cfg.batch_size % ranks.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {ranks.world_size} processes")
    model.to(device)
    groups = task.param_groups(model) if hasattr(task, "param_groups") else [{"params": list(model.parameters())}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    clipped = [p for group in optimizer.param_groups if group.get("clip", True) for p in group["params"]]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.steps, cfg.warmup))
    start, history = 0, []
    best = {"score": -math.inf, "step": 0, "state": _cpu_state(model)}
    if ranks.is_main:
        remove_stale_temporaries(run_dir)
    saved = load_checkpoint(run_dir)
    resumed = saved is not None and saved.get("fingerprint") == fingerprint
    if resumed:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        start, history, best = int(saved["step"]), list(saved["history"]), dict(saved["best"])
        if ranks.is_main:
            log.info("%s: resumed from %s at step %d", desc, run_dir / CHECKPOINT, start)
    elif saved is not None and ranks.is_main:
        log.warning("%s: %s belongs to other settings; starting over", desc, run_dir / CHECKPOINT)
    average = WeightAverage(model, cfg.ema_decay, saved["average"] if resumed else None) if cfg.ema_decay > 0 else None
    trained = (
        nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                            find_unused_parameters=getattr(task, "find_unused_parameters", False))
        if ranks.world_size > 1
        else model
    )
    dtype = autocast_dtype(device, cuda_bf16=cfg.bf16, cpu_bf16=cfg.cpu_bf16)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    per_rank = cfg.batch_size // ranks.world_size

    def checkpoint(step: int) -> None:
        if ranks.is_main:
            state = {"fingerprint": fingerprint, "step": step, "model": _cpu_state(model), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "best": best, "history": history}
            if average is not None:
                state["average"] = average.state()
            save_torch_atomic(run_dir / CHECKPOINT, state)
            if history_csv is not None:
                write_table_atomic(history_csv, pd.DataFrame(history))

    # in a log file (dvc repro, Prefect) redraw every 30 s instead of many times a second
    interval = 0.1 if sys.stderr.isatty() else 30.0
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=desc, unit="step",
               disable=not ranks.is_main, mininterval=interval)
    if cfg.data_workers and not hasattr(task, "draw"):
        raise ValueError(f"{desc}: data_workers > 0 needs a task that draws its batches apart from its loss (no draw())")
    prefetch = (
        BatchPrefetcher(
            draw=task.draw, batch_size=per_rank, seed=cfg.seed, rank=ranks.rank, steps=range(start, cfg.steps), workers=cfg.data_workers
        )
        if cfg.data_workers
        else contextlib.nullcontext()
    )
    with prefetch as draw_ahead:
        for step in bar:
            if hasattr(task, "train_mode"):
                task.train_mode(model)
            else:
                model.train()
            torch.manual_seed(step_seed(cfg.seed, step, ranks.rank))
            with autocast:
                if draw_ahead is None:
                    loss, scalars = task.loss(trained, np.random.default_rng([cfg.seed, step, ranks.rank]), per_rank, device)
                else:
                    loss, scalars = task.loss_on(trained, draw_ahead.batch(step), device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(clipped, cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update(model)
            row = {
                "step": step + 1,
                "loss": float(loss.item()),
                "grad_norm": float(grad_norm.item()),
                "lr": scheduler.get_last_lr()[0],
                **scalars,
            }
            done = step + 1 == cfg.steps
            if ranks.is_main and ((step + 1) % cfg.eval_every == 0 or done):
                model.eval()
                with torch.no_grad(), autocast, (average.applied(model) if average else contextlib.nullcontext()):
                    metrics = task.evaluate(model)
                    row.update({f"val_{k}": v for k, v in metrics.items()})
                    score = metrics[selection_metric]
                    # a NaN score (a metric undefined on this validation set) never blocks a real one
                    selectable = step + 1 >= cfg.first_selectable_step
                    if selectable and (score > best["score"] or best["step"] == 0 or math.isnan(best["score"])):
                        best = {"score": float(score), "step": step + 1, "state": _cpu_state(model)}
                bar.set_postfix({selection_metric: f"{score:.3f}"})
                log.info("%s step %d: loss %.4f, val %s %.4f", desc, step + 1, row["loss"], selection_metric, score)
            history.append(row)
            if (step + 1) % cfg.checkpoint_every == 0 or done:
                checkpoint(step + 1)
            if ranks.world_size > 1 and (done or (step + 1) % cfg.eval_every == 0):
                dist.barrier()
    digests = [state_digest(model.state_dict())]
    if ranks.world_size > 1:  # every replica reports its weights; DDP must have kept them equal
        digests = [None] * ranks.world_size
        dist.all_gather_object(digests, state_digest(model.state_dict()))
        if len(set(digests)) != 1 and ranks.is_main:
            log.error("%s: DDP replicas diverged: %s", desc, digests)
    return LoopResult(
        best_state=best["state"],
        best_step=int(best["step"]),
        best_score=float(best["score"]),
        history=history,
        dist=ranks,
        replica_digests=digests,
    )


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete temporaries of a checkpoint write that was killed mid-way (never read)."""
    for stale in run_dir.glob(f".{Path(CHECKPOINT).stem}.*"):
        stale.unlink(missing_ok=True)


def clear_run(run_dir: Path) -> None:
    """Remove a finished run's resume checkpoint (its outputs are written by then)."""
    (run_dir / CHECKPOINT).unlink(missing_ok=True)
    remove_stale_temporaries(run_dir)


def fingerprint_of(*parts: Any) -> str:
    """A stable digest of configuration objects (dataclasses, dicts, strings)."""
    text = json.dumps([asdict(p) if is_dataclass(p) else p for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

