"""Melody generation and rendering (with a fake synth: no soundfont needed)."""

from __future__ import annotations

import numpy as np

from marssep_core.data.instruments import PITCH_RANGE, make_melody, render_melody
from marssep_core.data.sources import GM_PROGRAMS


def test_melody_is_deterministic_in_range_and_seed_dependent():
    for program in GM_PROGRAMS.values():
        notes = make_melody(program, seed=7, seconds=6.0)
        assert notes == make_melody(program, seed=7, seconds=6.0)
        assert notes != make_melody(program, seed=8, seconds=6.0)
        low, high = PITCH_RANGE[program]
        assert all(low <= p <= high for note in notes for p in note.pitches)
        assert all(note.start + note.duration <= 5.5 + 1e-6 for note in notes)
        assert len(notes) >= 3


class FakeSynth:
    """Records events; each sample's value is the number of sounding notes (left = right)."""

    def __init__(self):
        self.on: set[int] = set()
        self.log: list[tuple[str, int]] = []

    def system_reset(self):
        self.on.clear()
        return 0

    def program_select(self, chan, sfid, bank, preset):
        self.log.append(("program", preset))
        return 0

    def noteon(self, chan, key, vel):
        self.on.add(key)
        self.log.append(("on", key))
        return 0

    def noteoff(self, chan, key):
        self.on.discard(key)
        self.log.append(("off", key))
        return 0

    def get_samples(self, count):
        return np.full(2 * count, 1000 * len(self.on), dtype=np.int16)


def test_render_places_notes_at_their_sample_positions():
    synth = FakeSynth()
    sr = 1000
    notes = make_melody(0, seed=3, seconds=3.0)
    audio = render_melody(synth=synth, sfid=0, program=0, notes=notes, seconds=3.0, sample_rate=sr)
    assert audio.shape == (3000,) and audio.dtype == np.float32
    assert synth.log[0] == ("program", 0)
    first = notes[0]
    start = round(first.start * sr)
    assert audio[start] > 0  # sounding from its start
    assert np.all(audio[-500:] == 0)  # the last half second only rings out (all notes off)
    ons = sum(1 for kind, _ in synth.log if kind == "on")
    assert ons == sum(len(n.pitches) for n in notes)
