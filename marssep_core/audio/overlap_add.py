"""Chunked processing with overlap-add, for audio longer than a model should see at once.

``overlap_add(process, wave, segment, overlap)`` cuts ``wave`` ``(C, N)`` into ``segment``-sample
windows that overlap by the fraction ``overlap``, runs ``process`` on each ``(C, segment)``
window (the last one zero-padded), and cross-fades the results with triangular weights
normalised by their sum, so the output ``(C, N)`` has no seams.

``StreamingOverlapAdd`` does the same on a stream: ``push`` blocks of any size as they are
decoded and get back the samples no later window can change; ``finish`` returns the rest. It
holds at most one window plus ``batch`` hops of audio, so memory does not grow with the input
length, and it hands ``batch`` windows at a time to ``process`` (one batched forward pass).
``overlap_add`` is the stream fed in one block: both give identical results.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BatchProcess = Callable[[np.ndarray], np.ndarray]  # windows (W, C, S) -> (W, C, S)


class StreamingOverlapAdd:
    """Overlap-add over a stream of ``(C, n)`` blocks; see the module docstring."""

    def __init__(self, process: BatchProcess, channels: int, segment: int, overlap: float = 0.25, batch: int = 1):
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        if segment <= 0:
            raise ValueError(f"segment must be positive, got {segment}")
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.process, self.channels, self.segment, self.batch = process, channels, segment, batch
        self.hop = max(1, int(round(segment * (1.0 - overlap))))
        ramp = np.minimum(np.arange(1, segment + 1), np.arange(segment, 0, -1)).astype(np.float64)
        self.weight = ramp / ramp.max()
        self.received = 0  # samples pushed so far
        self.next_start = 0  # absolute start of the next window to cut
        self.input = np.zeros((channels, 0), dtype=np.float32)  # input from absolute sample input_start
        self.input_start = 0
        # weighted sums and weights from absolute sample ``emitted``; ``filled`` of them in use. The
        # buffers are allocated once (one window plus a batch of hops) and shifted on emit.
        capacity = segment + batch * self.hop
        self.output = np.zeros((channels, capacity), dtype=np.float64)
        self.total = np.zeros(capacity, dtype=np.float64)
        self.filled = 0
        self.emitted = 0
        self.pending: list[tuple[int, np.ndarray, int]] = []  # (start, window, valid samples)

    def push(self, block: np.ndarray) -> np.ndarray:
        """Add ``(C, n)`` input samples; returns the finished output samples ``(C, m)``."""
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected blocks of shape ({self.channels}, n), got {block.shape}")
        self.input = np.concatenate([self.input, block.astype(np.float32, copy=False)], axis=1)
        self.received += block.shape[1]
        # emitted after every batch, so the output buffer stays one window plus a batch of hops
        # long even when the whole input comes as one block (separate_array)
        finished = []
        while self.next_start + self.segment <= self.received:
            self._cut(self.next_start, self.segment)
            self.next_start += self.hop
            if len(self.pending) == self.batch:
                self._run()
                finished.append(self._emit(self.next_start))
        finished.append(self._emit(self.next_start if not self.pending else self.pending[0][0]))
        return np.concatenate(finished, axis=1)

    def finish(self) -> np.ndarray:
        """Process what is left (the last window zero-padded); returns the remaining output."""
        length = self.received
        if length == 0:
            return np.zeros((self.channels, 0), dtype=np.float32)
        if length < self.segment and self.next_start == 0:
            # shorter than one window: processed whole, without padding, as overlap_add always did
            window = self.input[:, :length]
            self.pending.append((0, window, length))
        elif self.next_start - self.hop + self.segment < length:
            self._cut(self.next_start, length - self.next_start)
        self._run()
        return self._emit(length)

    def _cut(self, start: int, valid: int) -> None:
        piece = self.input[:, start - self.input_start : start - self.input_start + valid]
        if valid < self.segment:
            piece = np.pad(piece, ((0, 0), (0, self.segment - valid)))
        self.pending.append((start, np.ascontiguousarray(piece), valid))

    def _run(self) -> None:
        if not self.pending:
            return
        # one shape per batch: full (padded) windows, or the single short window of a short input
        results = self.process(np.stack([w for _, w, _ in self.pending]))
        self._grow(max(start + valid for start, _, valid in self.pending))
        for (start, _, valid), result in zip(self.pending, results):
            self._accumulate(start, result[:, :valid])
        self.pending = []
        keep_from = self.next_start  # no future window reads input before its start
        self.input = self.input[:, keep_from - self.input_start :]
        self.input_start = keep_from

    def _grow(self, end: int) -> None:
        """Make the output buffers reach absolute sample ``end``."""
        need = end - self.emitted
        if need > self.total.shape[0]:  # not reached while every batch is emitted; kept for safety
            self.output = np.pad(self.output, ((0, 0), (0, need - self.total.shape[0])))
            self.total = np.pad(self.total, (0, need - self.total.shape[0]))
        self.filled = max(self.filled, need)

    def _accumulate(self, start: int, result: np.ndarray) -> None:
        offset = start - self.emitted
        weight = self.weight[: result.shape[1]]
        self.output[:, offset : offset + result.shape[1]] += result * weight
        self.total[offset : offset + result.shape[1]] += weight

    def _emit(self, upto: int) -> np.ndarray:
        """Return output samples ``[emitted, upto)``: no later window touches them."""
        count = min(upto - self.emitted, self.filled)
        if count <= 0:
            return np.zeros((self.channels, 0), dtype=np.float32)
        done = self.output[:, :count] / self.total[:count]
        rest = self.filled - count
        self.output[:, :rest] = self.output[:, count : self.filled]  # numpy copies overlapping slices safely
        self.total[:rest] = self.total[count : self.filled]
        self.output[:, rest : self.filled] = 0.0
        self.total[rest : self.filled] = 0.0
        self.filled = rest
        self.emitted += count
        return done.astype(np.float32)


def overlap_add(
    process: Callable[[np.ndarray], np.ndarray], wave: np.ndarray, segment: int, overlap: float = 0.25
) -> np.ndarray:
    """Apply ``process`` window by window; ``wave`` and the result are ``(C, N)`` float32."""
    stream = StreamingOverlapAdd(lambda windows: np.stack([process(w) for w in windows]), wave.shape[0], segment, overlap)
    return np.concatenate([stream.push(wave), stream.finish()], axis=1)
