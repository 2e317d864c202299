"""``explain``: the text of an error (a bare message or a whole traceback) in, a ``Diagnosis`` out.

Must not import torch. Rules live one family of errors per module in ``explain/rules/``; each module
registers its functions with ``@rule`` and is picked up automatically.
"""

from __future__ import annotations

from headfit.diagnosis import Diagnosis
from headfit.explain.engine import diagnose_parsed, diagnose_text, rule
from headfit.explain.parse import Frame, ParsedError, parse_error

__all__ = ["explain", "diagnose_text", "diagnose_parsed", "rule", "Frame", "ParsedError", "parse_error"]


def explain(error_or_text: BaseException | str) -> Diagnosis:
    """Diagnose an exception object or the text of an error message / pasted traceback."""
    if isinstance(error_or_text, BaseException):
        from headfit.explain.parse import parse_exception

        return diagnose_parsed(parse_exception(error_or_text))
    if isinstance(error_or_text, (bytes, bytearray)):  # a log read in binary mode
        error_or_text = bytes(error_or_text).decode("utf-8", errors="replace")
    if not isinstance(error_or_text, str):
        raise TypeError(
            f"explain() takes an exception or the text of an error message or traceback, "
            f"not {type(error_or_text).__name__}"
        )
    return diagnose_text(error_or_text)
