"""The real error messages of ``tests/data/real_messages/``: how a case is stored, and how it is graded.

Each file starts with a comment block: ``# source:`` the public thread, ``# expect:`` the code a person
reading the thread agrees with, ``# cause:`` the cause the thread established (in words, for the reader),
and what the diagnosis must also get right: ``# module:`` / ``# attribute:`` (of the top cause), ``# fact:``
/ ``# fix:`` / ``# summary:`` (text that must appear in one fact, in the top cause's fix, in the summary).
``# known:`` marks a case explain still gets wrong, and says how. The block is stripped before
explaining. The test suite and ``scripts/real_message_tally.py`` (the README's tally) grade with ``grade``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from headfit.explain import explain

DATA = Path(__file__).parent / "data" / "real_messages"


@dataclass
class Case:
    name: str
    text: str
    meta: dict[str, list[str]] = field(default_factory=dict)

    def one(self, key: str) -> str | None:
        values = self.meta.get(key)
        return values[0] if values else None

    @property
    def known_wrong(self) -> bool:
        return "known" in self.meta


def load(path: Path) -> Case:
    lines = path.read_text(encoding="utf-8").split("\n")
    meta: dict[str, list[str]] = {}
    start = 0
    for start, line in enumerate(lines):  # noqa: B007 - start is the first body line
        if not line.startswith("# ") or ":" not in line:
            break
        key, value = line[2:].split(":", 1)
        meta.setdefault(key.strip(), []).append(value.strip())
    return Case(path.stem, "\n".join(lines[start:]), meta)


def all_cases() -> list[Case]:
    return [load(p) for p in sorted(DATA.glob("*.txt"))]


def grade(case: Case) -> str | None:
    """None when explain diagnoses ``case`` as its thread did, else what it got wrong."""
    d = explain(case.text)
    if d.code != case.one("expect"):
        return f"code {d.code} ({d.summary}), not {case.one('expect')}"
    top = d.causes[0] if d.causes else None
    for key in ("module", "attribute"):
        want = case.one(key)
        if want is not None and (top is None or getattr(top, key) != want):
            return f"top cause's {key} is {getattr(top, key, None)!r}, not {want!r}"
    for fact in case.meta.get("fact", []):
        if not any(fact in f for f in d.facts):
            return f"no fact says {fact!r}: {d.facts}"
    for fix in case.meta.get("fix", []):
        if top is None or fix not in (top.fix or ""):
            return f"the top fix does not say {fix!r}: {top.fix if top else None!r}"
    for summary in case.meta.get("summary", []):
        if summary not in d.summary:
            return f"the summary does not say {summary!r}: {d.summary!r}"
    return None


def tally(cases: list[Case] | None = None) -> tuple[int, int]:
    """(messages held, messages diagnosed right)."""
    cases = all_cases() if cases is None else cases
    return len(cases), sum(grade(c) is None for c in cases)


def tally_line(held: int, right: int) -> str:
    return (
        f"The test suite holds {held} real error messages and tracebacks from public threads "
        f"(`tests/data/real_messages/`); `explain` diagnoses {right} of them as the thread established "
        f"({right * 100 // max(held, 1)}%: the code, and the top cause's module, fix and facts where the file names them)."
    )
