"""One way for every rule to assemble its Diagnosis: code, category, the error, where it happened."""

from __future__ import annotations

from headfit.catalogue import category_of
from headfit.diagnosis import Cause, Diagnosis, Location
from headfit.explain.locate import locate, user_location
from headfit.explain.parse import ParsedError


def make_diagnosis(
    parsed: ParsedError,
    code: str,
    summary: str,
    facts: list[str],
    causes: list[Cause],
    location: Location | None = None,
) -> Diagnosis:
    """A Diagnosis of ``parsed``; the location defaults to the library frame that names a module, and the
    facts end with what the traceback shows."""
    if parsed.frames:  # frames.py is only imported for a traceback: a bare message must start fast
        from headfit.explain.frames import traceback_facts

        facts = facts + [f for f in traceback_facts(parsed) if f not in facts]
    return Diagnosis(
        code=code,
        category=category_of(code),
        error_type=parsed.type,
        message=parsed.message,
        summary=summary,
        facts=facts,
        location=location if location is not None else locate(parsed),
        user_location=user_location(parsed),
        causes=causes,
    )
