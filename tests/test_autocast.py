"""Where the training loop autocasts to bf16: CUDA with ``bf16``, and a CPU with native bf16 with
``cpu_bf16`` (read from the CPU flags; emulated bf16 would be slower than float32)."""

from __future__ import annotations

import pytest
import torch

from marssep_core import torch_utils
from marssep_core.torch_utils import autocast_dtype, cpu_has_native_bf16
from marssep_core.training.loop import LoopConfig, train_loop

CPUINFO = "processor\t: {n}\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 avx512f {extra}\n\n"


@pytest.mark.parametrize(("extra", "native"), [("avx512_bf16", True), ("amx_bf16 amx_tile", True), ("avx512bw avx512vl", False)])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, extra, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO.format(n=0, extra=extra) + CPUINFO.format(n=1, extra=extra))
    assert cpu_has_native_bf16(cpuinfo) is native


def test_an_unreadable_cpuinfo_means_no_native_bf16(tmp_path):
    assert cpu_has_native_bf16(tmp_path / "absent") is False


@pytest.mark.parametrize(
    ("device", "cuda_bf16", "cpu_bf16", "native", "expected"),
    [
        ("cuda", True, False, False, torch.bfloat16),
        ("cuda", False, True, True, None),
        ("cpu", True, False, True, None),  # bf16 alone is CUDA's switch
        ("cpu", True, True, True, torch.bfloat16),
        ("cpu", True, True, False, None),  # asked for, but emulated here: float32
    ],
)
def test_autocast_dtype(monkeypatch, device, cuda_bf16, cpu_bf16, native, expected):
    monkeypatch.setattr(torch_utils, "cpu_has_native_bf16", lambda: native)
    assert autocast_dtype(torch.device(device), cuda_bf16=cuda_bf16, cpu_bf16=cpu_bf16) == expected


class _AutocastRecordingTask:
    """A linear fit that records, per loss and per validation, the CPU autocast dtype in force (or None)."""

    def __init__(self):
        self.seen = []

    def _record(self) -> None:
        self.seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)

    def loss(self, model, rng, batch_size, device):
        self._record()
        x = torch.from_numpy(rng.standard_normal((batch_size, 2)).astype("float32"))
        return ((model(x).float() - x.sum(dim=1, keepdim=True)) ** 2).mean(), {}

    def evaluate(self, model):
        self._record()
        return {"score": 0.0}


@pytest.mark.parametrize(("cpu_bf16", "native", "expected"),
                         [(True, True, torch.bfloat16), (True, False, None), (False, True, None)])
def test_the_loop_autocasts_steps_and_validation_where_asked_and_native(tmp_path, monkeypatch, cpu_bf16, native, expected):
    monkeypatch.setattr(torch_utils, "cpu_has_native_bf16", lambda: native)
    task = _AutocastRecordingTask()
    cfg = LoopConfig(steps=4, batch_size=4, warmup=1, eval_every=2, checkpoint_every=4, device="cpu", cpu_bf16=cpu_bf16)
    train_loop(model=torch.nn.Linear(2, 1), task=task, cfg=cfg, run_dir=tmp_path, fingerprint="bf16", selection_metric="score")
    assert len(task.seen) >= 6 and set(task.seen) == {expected}
