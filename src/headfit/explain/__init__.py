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
    return diagnose_text(error_or_text)
