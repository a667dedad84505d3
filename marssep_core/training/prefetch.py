"""Training batches drawn ahead in worker processes: the same batches, off the training process.

The loop draws step ``s``'s batch from ``np.random.default_rng([seed, s, rank])``. At the paper
profile one CPU process needs longer to mix a batch than a GPU needs for the step
(``docs/gpu.md``), so ``BatchPrefetcher`` has ``workers`` processes draw the batches of the coming
steps with exactly those generators, up to ``depth`` steps ahead, and hands them over in step
order: a run with workers draws the batches a run without them draws, and resumes the same way.

Workers are forked: they inherit the draw function and its audio bank (a memory map) instead of
receiving a pickled copy, and return the batch's tensors through shared memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np
import torch.multiprocessing

Draw = Callable[[np.random.Generator, int], Any]  # (generator, batch size) -> batch

_draw: Draw | None = None  # the worker's draw function, set before the pool forks


def _install(draw: Draw) -> None:
    global _draw
    _draw = draw
    torch.set_num_threads(1)  # a worker is one core; the training process keeps the others


def _draw_step(seed: int, step: int, rank: int, batch_size: int) -> Any:
    assert _draw is not None, "worker started without a draw function"
    return _draw(np.random.default_rng([seed, step, rank]), batch_size)


class BatchPrefetcher:
    """Batches of ``steps`` (in order) drawn by ``workers`` forked processes, ``depth`` steps ahead."""

    def __init__(self, draw: Draw, batch_size: int, seed: int, rank: int, steps: range, workers: int, depth: int | None = None):
        if workers < 1:
            raise ValueError(f"data_workers must be >= 1 for a prefetcher, got {workers}")
        self.batch_size, self.seed, self.rank = batch_size, seed, rank
        self.upcoming = iter(steps)
        self.depth = depth or 2 * workers
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=torch.multiprocessing.get_context("fork"),
                                        initializer=_install, initargs=(draw,))
        self.pending: deque[tuple[int, Future]] = deque()
        self._fill()

    def _fill(self) -> None:
        while len(self.pending) < self.depth:
            step = next(self.upcoming, None)
            if step is None:
                return
            self.pending.append((step, self.pool.submit(_draw_step, seed=self.seed, step=step, rank=self.rank, batch_size=self.batch_size)))

    def batch(self, step: int) -> Any:
        """The batch of ``step``, which must be the next step of the range."""
        if not self.pending or self.pending[0][0] != step:
            raise RuntimeError(f"prefetcher asked for step {step}, next drawn is {self.pending[0][0] if self.pending else 'none'}")
        _, future = self.pending.popleft()
        self._fill()
        return future.result()

    def close(self) -> None:
        for _, future in self.pending:
            future.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BatchPrefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
