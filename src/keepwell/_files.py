"""Private files and folders: everything keepwell creates is 0700 (folders) or 0600 (files)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["make_private_dir", "seal_private", "touch_private"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and its missing parents, each 0700.

    ``Path.mkdir(parents=True)`` would leave the parents at the umask's mode.
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=DIR_MODE)
    return path


def touch_private(path: str | os.PathLike[str]) -> None:
    """Create an empty 0600 file if it does not exist yet (before another library creates it
    with the umask's mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))


def seal_private(path: str | os.PathLike[str]) -> None:
    """Make a file written by another library 0600 and sync it to disk, before it is renamed
    into place."""
    os.chmod(path, FILE_MODE)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
