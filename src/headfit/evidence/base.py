"""The finder registry: ``@finder(code=...)`` registers one reader of the failing frames.

A finder takes the ``Scene`` and the exception and returns ``LiveEvidence`` (facts with numbers,
causes with fixes) or None when its case does not apply. ``code`` is the code a diagnosis takes when the
message alone was not recognised but this finder explains the failure; None for finders that only add
to a diagnosis the message already names (a batch of one, a grey image).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headfit.diagnosis import Diagnosis
from headfit.families import Evidence
from headfit.scene import Scene, user_name

Finder = Callable[[Scene, BaseException], "LiveEvidence | None"]


@dataclass
class LiveEvidence(Evidence):
    """Evidence from the frames. ``settles``: the causes are computed from the live values and answer
    the error outright (a label out of range for this very head), so the guesses made from the message
    alone are dropped."""

    code: str | None = None  # overrides the finder's code (one finder, two findings: see ``loss.py``)
    settles: bool = False


@dataclass(frozen=True)
class _Registered:
    find: Finder
    code: str | None
    priority: int


_FINDERS: list[_Registered] = []
_OUT_OF_BOUNDS = re.compile(r"(?:Target|index) (-?\d+) is out of bounds")
_DEVICE_ASSERT = re.compile(r"device-side assert triggered|t >= 0 && t < n_classes")


def finder(code: str | None, priority: int = 50) -> Callable[[Finder], Finder]:
    """Register a finder. Lower ``priority`` is asked first (its code wins when several explain the
    failure): the data loader, then the loss, then the model's own inputs and state."""

    def register(find: Finder) -> Finder:
        _FINDERS.append(_Registered(find, code, priority))
        _FINDERS.sort(key=lambda r: r.priority)  # stable: registration order within a priority
        return find

    return register


def data_evidence(scene: Scene, exc: BaseException, diagnosis: Diagnosis) -> LiveEvidence:
    """Everything the values in the frames add, from every registered finder."""
    found = LiveEvidence()
    for registered in _FINDERS:
        try:
            evidence = registered.find(scene, exc)
        except Exception:  # one finder's blind spot must not hide the others
            evidence = None
        if evidence is None:
            continue
        found.facts.extend(f for f in evidence.facts if f not in found.facts)
        found.causes.extend(evidence.causes)
        found.settles = found.settles or evidence.settles
        found.code = found.code or evidence.code or registered.code
    return found


def name_of(scene: Scene, obj: Any, default: str | None) -> str | None:
    """The user's name for ``obj`` in their frames, else ``default``."""
    return user_name(scene, obj) or default


def message_is_about(exc: BaseException, label: int) -> bool:
    """Whether the error says that ``label`` is out of bounds (``Target 5 is out of bounds``), or is the
    CUDA form that names no label (a device-side assert): then a live finding about ``label`` answers
    the error outright, and guesses from the message alone are dropped."""
    message = str(exc)
    match = _OUT_OF_BOUNDS.search(message)
    if match is not None:
        return int(match.group(1)) == label
    return _DEVICE_ASSERT.search(message) is not None
