"""Audio I/O, resampling, STFT/iSTFT and mixing shared by every stage.

The torch-based STFT lives in ``marssep_core.audio.stft`` and is not imported here, so the data
stages (numpy only) do not pay for importing torch in every worker process.
"""

from marssep_core.audio.io import AudioDecodeError, AudioInfo, load_audio, probe_audio, save_audio, to_mono
from marssep_core.audio.mixing import crop_or_pad, mix_pair, peak_normalize, rms_normalize, snr_db
from marssep_core.audio.resample import resample

__all__ = [
    "AudioDecodeError",
    "AudioInfo",
    "crop_or_pad",
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
