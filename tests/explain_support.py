"""Real torch errors for the explain tests: run the faulty code, keep its message and traceback."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Raised:
    exception: BaseException
    message: str  # str(exc)
    text: str  # the whole traceback, as Python prints it

    @property
    def typed(self) -> str:
        return f"{type(self.exception).__name__}: {self.message}"


def raised(fn: Callable[[], object]) -> Raised:
    """Run ``fn``, which must raise; return the exception, its message and its formatted traceback."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - any error is what we want
        return Raised(exc, str(exc), "".join(traceback.format_exception(exc)))
    raise AssertionError(f"{fn} did not raise")


def ipython_traceback(fn: Callable[[], object], colour: bool = True) -> str:
    """The traceback IPython/Jupyter would show for ``fn``'s exception (with ANSI colours by default)."""
    import sys

    from IPython.core.ultratb import VerboseTB

    try:
        fn()
    except Exception:
        formatter = VerboseTB(theme_name="linux" if colour else "nocolor")
        return formatter.text(*sys.exc_info())
    raise AssertionError(f"{fn} did not raise")
