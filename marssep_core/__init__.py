"""marssep_core: the MARS-Sep library (audio, data, encoders, separation, RL, evaluation, export)."""

__version__ = "0.1.0"
