"""Audio I/O, resampling, STFT/iSTFT and mixing shared by every stage."""

from marssep_core.audio.io import AudioDecodeError, AudioInfo, load_audio, probe_audio, save_audio, to_mono
from marssep_core.audio.mixing import mix_pair, peak_normalize, rms_normalize, snr_db
from marssep_core.audio.resample import resample
from marssep_core.audio.stft import STFT

__all__ = [
    "AudioDecodeError",
    "AudioInfo",
    "STFT",
    "load_audio",
    "mix_pair",
    "peak_normalize",
    "probe_audio",
    "resample",
    "rms_normalize",
    "save_audio",
    "snr_db",
    "to_mono",
]
