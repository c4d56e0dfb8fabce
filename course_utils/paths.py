"""Where things live.

The course data directory is, in order of precedence: an explicit argument,
the ``COURSE_DATA_DIR`` environment variable, or ``data/`` at the root of the
course checkout (next to ``source/``).
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
WEIGHTS_DIR = PACKAGE_DIR / "weights"


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Return the course data directory (argument > $COURSE_DATA_DIR > <repo>/data)."""
    if path is not None:
        return Path(path).expanduser().resolve()
    env = os.environ.get("COURSE_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return REPO_DIR / "data"


def image_dir(path: str | os.PathLike | None = None) -> Path:
    """Directory holding the course PNGs."""
    return data_dir(path) / "images"
