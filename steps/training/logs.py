"""The steps' own log lines, kept visible after Axolotl takes over the root logger.

Importing Axolotl installs a root handler that drops INFO from every logger but its own,
so each step logs through a handler of its own instead of the root's.
"""
from __future__ import annotations

import logging
import sys


def step_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"[{name}] %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger
