"""marssep_core: the MARS-Sep library (audio, data, encoders, separation, RL, evaluation, export)."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``marssep_core.separate`` without importing torch for data-only users of the package
    if name == "separate":
        from marssep_core.serving.api import separate

        return separate
    raise AttributeError(f"module 'marssep_core' has no attribute {name!r}")
