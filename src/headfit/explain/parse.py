"""Turn pasted text (a message, ``Type: message``, a Python/IPython traceback, chained) into a ParsedError.

Placeholder types; the full parser is built in issue 3.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Frame:
    file: str
    line: int | None
    function: str | None
    source: str | None = None


@dataclass
class ParsedError:
    type: str | None  # e.g. "RuntimeError"; None for a bare message
    message: str  # the whole message of the relevant (last) exception
    frames: list[Frame] = field(default_factory=list)  # outermost first
    raw: str = ""


def parse_error(text: str) -> ParsedError | str:
    """Parse ``text``; return a reason string when it is not an error message at all."""
    raise NotImplementedError


def parse_exception(exc: BaseException) -> ParsedError:
    raise NotImplementedError
