"""Real error messages and tracebacks that users posted in public threads, as they pasted them.

Each file in ``tests/data/real_messages/`` starts with a comment block: ``# source:`` the thread, ``# expect:``
the code a person reading the thread agrees with, and optionally what the diagnosis must also get right:
``# module:`` / ``# attribute:`` (of the top cause), ``# fact:`` / ``# fix:`` / ``# summary:`` (text that must
appear in one fact, in the top cause's fix, in the summary). The block is stripped before explaining.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

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


CASES = [load(p) for p in sorted(DATA.glob("*.txt"))]


def test_every_case_names_its_thread_and_code():
    assert len(CASES) >= 40
    for case in CASES:
        assert (case.one("source") or "").startswith("https://"), case.name
        assert (case.one("expect") or "").startswith("HF"), case.name
        assert case.text.strip() and not case.text.startswith("# "), case.name


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_real_message(case: Case):
    d = explain(case.text)
    assert d.code == case.one("expect"), (d.code, d.summary)
    top = d.causes[0] if d.causes else None
    if case.one("module") is not None:
        assert top is not None and top.module == case.one("module"), top
    if case.one("attribute") is not None:
        assert top is not None and top.attribute == case.one("attribute"), top
    for fact in case.meta.get("fact", []):
        assert any(fact in f for f in d.facts), (fact, d.facts)
    for fix in case.meta.get("fix", []):
        assert top is not None and fix in (top.fix or ""), (fix, top)
    for summary in case.meta.get("summary", []):
        assert summary in d.summary, (summary, d.summary)
