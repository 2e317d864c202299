"""Writing files so that a crash, a kill or a full disk never leaves a truncated one.

Every writer in headfit (adapt -o, data --fix/synth/tile, train's checkpoints and logs, predict's
images and results, evaluate's plots, run --json PATH) goes through ``atomic_write``: the bytes go to
a temporary file in the same folder, are flushed to disk, and only then replace the target with
``os.replace`` (atomic on POSIX and Windows). A failure removes the temporary file and raises one
``UsageError`` that says "no space left on the device" when that is the reason, as torch's zip writer
hides it behind "file write failed".
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from headfit.errors import UsageError


def atomic_write(path: Path, write: Callable[[BinaryIO], None], advice: str = "") -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it over ``path``.

    ``advice`` ends the paragraph of a failure (train: how to resume).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UsageError(_paragraph(path, exc, "", advice)) from None
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, new_file_mode())  # mkstemp makes 0600 files; an output is as readable as any file
        os.replace(tmp, path)
    except BaseException as exc:  # also a second Ctrl-C: never leave a half-written temporary file
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if not isinstance(exc, (OSError, RuntimeError, ValueError)):  # torch.save: RuntimeError; PIL: ValueError
            raise
        kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
        raise UsageError(_paragraph(path, exc, kept, advice)) from None


def atomic_write_text(path: Path, text: str, advice: str = "") -> None:
    atomic_write(path, lambda file: file.write(text.encode("utf-8")), advice)


def output_folder(path: Path, what: str) -> Path:
    """Make the folder ``path`` (and its parents) for an output; one paragraph when it is a file, or
    cannot be made."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {str(path)!r} is a file, not a folder: name a new or existing folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot make the folder {str(path)!r} ({write_failure(exc)}). Check that its parent exists and "
            "is writable, or name another folder"
        ) from None
    return path


def new_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def disk_full(exc: BaseException) -> bool:
    """ENOSPC, or torch's zip writer saying "file write failed" (it drops the errno)."""
    text = " ".join(str(exc).split()).lower()
    return getattr(exc, "errno", None) == errno.ENOSPC or "no space" in text or "write failed" in text


def write_failure(exc: BaseException) -> str:
    """Why a write failed, in a few words: "no space left on the device", or the system's reason."""
    if disk_full(exc):
        return "no space left on the device"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__


def _paragraph(path: Path, exc: BaseException, kept: str, advice: str) -> str:
    kept = f"; {kept}" if kept else ""
    fix = "Free some disk space" if disk_full(exc) else "Check that the folder exists and is writable"
    fix += f", then {advice}" if advice else " and try again"
    return f"cannot write {str(path)!r} ({write_failure(exc)}){kept}. {fix}"
