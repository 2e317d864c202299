"""The data headfit produces: plain dataclasses, rendered elsewhere (see ``render.py``).

Nothing here imports torch: ``explain`` must stay instant and offline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Location:
    """Where an error happened: a module of the user's model and/or a source line."""

    module: str | None = None  # path in the top-level model's named_modules(), "" for the root
    module_type: str | None = None  # class name, e.g. "FCOSClassificationHead"
    file: str | None = None
    line: int | None = None
    source: str | None = None


@dataclass
class Cause:
    """One possible reason for an error, with the fix for it. Causes are ranked by ``confidence``."""

    summary: str
    confidence: float
    module: str | None = None
    attribute: str | None = None
    fix: str | None = None


@dataclass
class Diagnosis:
    """A diagnosis of one error. ``code is None`` means the text was not recognised (``reason`` says why)."""

    code: str | None
    category: str | None
    error_type: str | None
    message: str
    summary: str
    facts: list[str] = field(default_factory=list)
    location: Location | None = None
    user_location: Location | None = None  # innermost frame in the user's own code, when known
    causes: list[Cause] = field(default_factory=list)
    reason: str | None = None  # why nothing was recognised (code is None)

    @property
    def recognised(self) -> bool:
        return self.code is not None

    def ranked(self) -> Diagnosis:
        """Sort causes most likely first (stable for equal confidence) and return self."""
        self.causes.sort(key=lambda c: -c.confidence)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "category": self.category,
            "error": {"type": self.error_type, "message": self.message},
            "summary": self.summary,
            "facts": list(self.facts),
            "location": asdict(self.location) if self.location else None,
            "user_location": asdict(self.user_location) if self.user_location else None,
            "causes": [asdict(c) for c in self.causes],
            "reason": self.reason,
        }


def unrecognised(message: str, reason: str, error_type: str | None = None) -> Diagnosis:
    """The honest answer when no rule applies."""
    return Diagnosis(
        code=None,
        category=None,
        error_type=error_type,
        message=message,
        summary="headfit does not recognise this error",
        reason=reason,
    )


@dataclass
class Problem:
    """A finding of ``check``: a head invariant that does not hold, or a trace that failed."""

    code: str
    module: str
    summary: str
    attribute: str | None = None
    facts: list[str] = field(default_factory=list)
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
