"""Instrument clips: seeded random melodies rendered from General MIDI soundfonts.

The soundfonts are multi-sampled recordings of real instruments; fluidsynth plays them. Melodies
are generated per (program, seed), so a clip is reproducible from its seed alone, and train/val
(FluidR3) and test (MuseScore) use disjoint seed ranges. Reverb and chorus are off so a clip is
the dry instrument.

Training can also render on the fly (``FreshRenders``): a new melody per draw, in the corpus's
style or a livelier one (``STYLES``), from a random training soundfont. fluidsynth keeps a little state from one
render to the next (first use of a sample, voice bookkeeping: small differences in some
notes), so the same sequence of draws from a fresh instance gives the same
audio, but a render is not a function of its seed alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

# Playable MIDI pitch range per GM program (roughly the real instrument's range).
PITCH_RANGE: dict[int, tuple[int, int]] = {
    0: (40, 88),  # piano
    13: (60, 96),  # xylophone
    21: (48, 84),  # accordion
    24: (40, 76),  # acoustic guitar
    40: (55, 93),  # violin
    42: (36, 72),  # cello
    56: (55, 82),  # trumpet
    58: (29, 58),  # tuba
    65: (49, 80),  # alto/tenor saxophone
    70: (34, 70),  # bassoon
    71: (50, 89),  # clarinet
    73: (60, 96),  # flute
    105: (48, 79),  # banjo
    109: (55, 77),  # bagpipe
    110: (55, 88),  # fiddle (erhu stand-in)
}
# Programs that can play two notes at once get occasional dyads.
POLYPHONIC = {0, 13, 21, 24, 105}


@dataclass(frozen=True)
class MelodyStyle:
    """How varied generated melodies are. The defaults are the corpus renders' (their bytes, and so
    ``data.dvc``, depend on them): changing one changes which random numbers are drawn."""

    velocity: tuple[int, int] = (70, 111)  # MIDI velocity drawn from [low, high)
    articulation: tuple[float, float] = (1.0, 1.0)  # sounding fraction of each note's slot (staccato < 1)
    beat_seconds: tuple[float, ...] = (0.25, 0.3, 0.4, 0.5)
    dyad_prob: float = 0.3  # two-note chords on polyphonic programs


# Melody styles training renders can use (``mixing.render_style``): the corpus's own, or a livelier
# one with softer and harder notes, staccato to legato, slower and faster tempi and more chords.
STYLES = {
    "corpus": MelodyStyle(),
    "lively": MelodyStyle(velocity=(35, 128), articulation=(0.3, 1.0),
                          beat_seconds=(0.12, 0.18, 0.25, 0.3, 0.4, 0.5, 0.7), dyad_prob=0.4),
}


@dataclass(frozen=True)
class Note:
    """One note event: MIDI pitch(es), start and duration in seconds, velocity."""

    pitches: tuple[int, ...]
    start: float
    duration: float
    velocity: int


def make_melody(program: int, seed: int, seconds: float, style: MelodyStyle = MelodyStyle()) -> list[Note]:
    """A random but musical melody for ``program`` filling ``seconds`` (the last 0.5 s ring out)."""
    rng = np.random.default_rng(seed)
    low, high = PITCH_RANGE.get(program, (48, 84))
    scale = np.array([0, 2, 4, 5, 7, 9, 11])  # major scale, random key
    key = int(rng.integers(0, 12))
    pitches = [p for p in range(low, high + 1) if (p - key) % 12 in scale]
    tempo_beat = float(rng.choice(list(style.beat_seconds)))
    detached = style.articulation != (1.0, 1.0)
    index = int(rng.integers(len(pitches) // 4, 3 * len(pitches) // 4 + 1))
    notes: list[Note] = []
    time = 0.0
    while time < seconds - 0.5:
        beats = int(rng.choice([1, 1, 2, 2, 3, 4]))
        duration = min(beats * tempo_beat, seconds - 0.5 - time)
        if rng.random() < 0.1:  # rest
            time += duration
            continue
        index = int(np.clip(index + rng.choice([-3, -2, -1, -1, 1, 1, 2, 3]), 0, len(pitches) - 1))
        chord = (pitches[index],)
        if program in POLYPHONIC and rng.random() < style.dyad_prob and index + 2 < len(pitches):
            chord = (pitches[index], pitches[index + 2])
        velocity = int(rng.integers(*style.velocity))
        sounding = duration * float(rng.uniform(*style.articulation)) if detached else duration
        notes.append(Note(chord, round(time, 6), round(sounding, 6), velocity))
        time += duration
    return notes


class Synth(Protocol):
    """The part of ``fluidsynth.Synth`` the renderer uses (a fake implements it in tests)."""

    def program_select(self, chan: int, sfid: int, bank: int, preset: int) -> int: ...
    def noteon(self, chan: int, key: int, vel: int) -> int: ...
    def noteoff(self, chan: int, key: int) -> int: ...
    def get_samples(self, count: int) -> np.ndarray: ...
    def system_reset(self) -> int: ...


def render_melody(synth: Synth, sfid: int, program: int, notes: list[Note], seconds: float, sample_rate: int) -> np.ndarray:
    """Play ``notes`` on ``synth`` and return mono float32 ``(round(seconds * sample_rate),)``."""
    synth.system_reset()
    synth.program_select(0, sfid, 0, program)
    events: list[tuple[int, int, int, int]] = []  # (sample, is_on, pitch, velocity): offs sort first
    for note in notes:
        for pitch in note.pitches:
            events.append((round(note.start * sample_rate), 1, pitch, note.velocity))
            events.append((round((note.start + note.duration) * sample_rate), 0, pitch, 0))
    events.sort()
    total = round(seconds * sample_rate)
    chunks: list[np.ndarray] = []
    cursor = 0
    for at, kind, pitch, velocity in events:
        if at > cursor:
            chunks.append(np.asarray(synth.get_samples(at - cursor)))
            cursor = at
        if kind == 1:
            synth.noteon(0, pitch, velocity)
        else:
            synth.noteoff(0, pitch)
    if total > cursor:
        chunks.append(np.asarray(synth.get_samples(total - cursor)))
    stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2) / 32768.0
    return stereo.mean(axis=1)[:total]


class SoundfontRenderer:
    """A fluidsynth instance with one soundfont loaded (loading takes up to seconds; do it once)."""

    def __init__(self, soundfont: Path, sample_rate: int, gain: float):
        import fluidsynth  # needs the system library libfluidsynth3

        self.sample_rate = sample_rate
        self.synth = fluidsynth.Synth(gain=gain, samplerate=float(sample_rate))
        self.synth.setting("synth.reverb.active", 0)
        self.synth.setting("synth.chorus.active", 0)
        self.sfid = self.synth.sfload(str(soundfont))
        if self.sfid < 0:
            raise RuntimeError(f"{soundfont}: fluidsynth could not load this soundfont")
        self.soundfont = Path(soundfont)
        # GM programs of bank 0 this soundfont has (a sampled bank may cover only some instruments)
        self.programs = frozenset(p for p in range(128) if self.synth.sfpreset_name(self.sfid, 0, p) is not None)

    def render(self, program: int, seed: int, seconds: float, style: MelodyStyle = MelodyStyle()) -> np.ndarray:
        notes = make_melody(program, seed, seconds, style)
        return render_melody(synth=self.synth, sfid=self.sfid, program=program, notes=notes, seconds=seconds, sample_rate=self.sample_rate)

    def close(self) -> None:
        self.synth.delete()


RENDER_GAIN = 0.6  # fluidsynth's master gain (the corpus's); mixing RMS-normalises each source anyway


class FreshRenders:
    """Instrument sources drawn on the fly: per call a new melody in ``STYLES[style]`` on a random
    soundfont of ``soundfonts`` (``{key: file}``, loaded once) among those with the class's program,
    for the classes of ``programs``."""

    def __init__(self, soundfonts: dict[str, Path], programs: dict[str, int], sample_rate: int, style: str = "lively"):
        if style not in STYLES:
            raise ValueError(f"mixing.render_style must be one of {sorted(STYLES)}, got {style!r}")
        self.style = STYLES[style]
        self.programs = dict(programs)
        renderers = [SoundfontRenderer(soundfonts[k], sample_rate, RENDER_GAIN) for k in sorted(soundfonts)]
        # per class, the soundfonts that have its program: a render never falls back to another preset
        self.renderers = {label: [r for r in renderers if program in r.programs] for label, program in self.programs.items()}
        missing = sorted(label for label, found in self.renderers.items() if not found)
        if missing:
            raise ValueError(f"no soundfont of {sorted(soundfonts)} has a preset for {missing} "
                             f"(programs {[self.programs[m] for m in missing]})")
        self.sample_rate = sample_rate

    def render(self, label: str, samples: int, rng: np.random.Generator) -> np.ndarray:
        """``(samples,)`` float32 of class ``label``: a window at a random offset into a melody
        half a second longer, so onsets fall anywhere and the end may ring out."""
        candidates = self.renderers[label]
        renderer = candidates[int(rng.integers(len(candidates)))]
        seed = int(rng.integers(0, 2**31))
        tail = self.sample_rate // 2
        wave = renderer.render(self.programs[label], seed, (samples + tail) / self.sample_rate, self.style)
        start = int(rng.integers(0, tail + 1))
        return np.ascontiguousarray(wave[start : start + samples])
