"""Writing files so that a crash, a kill or a full disk never costs the last good copy.

Everything goes to a temporary file in the same folder, is flushed to disk, and only then replaces
the old file with ``os.replace`` (atomic on POSIX and Windows). A failure removes the temporary file
and raises ``UsageError`` saying the previous file is intact.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from headfit.errors import UsageError


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it over ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {str(path)!r} ({_reason(exc)}). {_help(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; a run's files are as readable as any
        os.replace(tmp, path)
    except BaseException as exc:  # also a second Ctrl-C: never leave a half-written temporary file
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if not isinstance(exc, (OSError, RuntimeError)):  # torch.save reports a full disk as RuntimeError
            raise
        kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
        raise UsageError(f"cannot write {str(path)!r} ({_reason(exc)}); {kept}. {_help(exc)}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__


def _help(exc: BaseException) -> str:
    text = str(exc).lower()
    if "no space" in text or getattr(exc, "errno", None) == 28:
        return "Free disk space (or give `--project` on another disk) and resume the run with `--resume`"
    return "Check that the folder is writable, then resume the run with `--resume`"
