"""The one logging set-up of every entry point (stage scripts, ``marssep``, training processes)."""

from __future__ import annotations

import logging

FORMAT = "%(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool = False) -> None:
    """INFO (DEBUG when ``verbose``) to stderr as ``LEVEL module: message``."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=FORMAT)
