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


def segment_starts(length: int, segment: int, hop: int) -> list[int]:
    """Window starts covering ``[0, length)``; the last window ends at or after ``length``."""
    starts = list(range(0, max(1, length - segment + 1), hop))
    if starts[-1] + segment < length:
        starts.append(starts[-1] + hop)
    return starts


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
        self.output = np.zeros((channels, 0), dtype=np.float64)  # weighted sums from absolute emitted
        self.total = np.zeros(0, dtype=np.float64)
        self.emitted = 0
        self.pending: list[tuple[int, np.ndarray, int]] = []  # (start, window, valid samples)

    def push(self, block: np.ndarray) -> np.ndarray:
        """Add ``(C, n)`` input samples; returns the finished output samples ``(C, m)``."""
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected blocks of shape ({self.channels}, n), got {block.shape}")
        self.input = np.concatenate([self.input, block.astype(np.float32, copy=False)], axis=1)
        self.received += block.shape[1]
        while self.next_start + self.segment <= self.received:
            self._cut(self.next_start, self.segment)
            self.next_start += self.hop
            if len(self.pending) == self.batch:
                self._run()
        return self._emit(self.next_start if not self.pending else self.pending[0][0])

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
        for (start, _, valid), result in zip(self.pending, results):
            self._accumulate(start, result[:, :valid])
        self.pending = []
        keep_from = self.next_start  # no future window reads input before its start
        self.input = self.input[:, keep_from - self.input_start :]
        self.input_start = keep_from

    def _accumulate(self, start: int, result: np.ndarray) -> None:
        end = start + result.shape[1]
        grow = end - self.emitted - self.output.shape[1]
        if grow > 0:
            self.output = np.pad(self.output, ((0, 0), (0, grow)))
            self.total = np.pad(self.total, (0, grow))
        offset = start - self.emitted
        weight = self.weight[: result.shape[1]]
        self.output[:, offset : offset + result.shape[1]] += result * weight
        self.total[offset : offset + result.shape[1]] += weight

    def _emit(self, upto: int) -> np.ndarray:
        """Return output samples ``[emitted, upto)``: no later window touches them."""
        count = min(upto - self.emitted, self.output.shape[1])
        if count <= 0:
            return np.zeros((self.channels, 0), dtype=np.float32)
        done = self.output[:, :count] / self.total[:count]
        self.output, self.total = self.output[:, count:], self.total[count:]
        self.emitted += count
        return done.astype(np.float32)


def overlap_add(
    process: Callable[[np.ndarray], np.ndarray], wave: np.ndarray, segment: int, overlap: float = 0.25
) -> np.ndarray:
    """Apply ``process`` window by window; ``wave`` and the result are ``(C, N)`` float32."""
    stream = StreamingOverlapAdd(lambda windows: np.stack([process(w) for w in windows]), wave.shape[0], segment, overlap)
    return np.concatenate([stream.push(wave), stream.finish()], axis=1)
