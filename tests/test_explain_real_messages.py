"""Real error messages and tracebacks that users posted in public threads, as they pasted them; how they
are stored and graded is in ``real_messages.py``. A case marked ``# known:`` must still fail (remove the
mark when explain gets it right), and the README's tally is the one ``grade`` computes."""

from __future__ import annotations

from pathlib import Path

import pytest

from real_messages import all_cases, grade, tally, tally_line

CASES = all_cases()
README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_case_names_its_thread_and_code():
    assert len(CASES) >= 156
    for case in CASES:
        assert (case.one("source") or "").startswith("https://"), case.name
        assert (case.one("expect") or "").startswith("HF"), case.name
        assert case.text.strip() and not case.text.startswith("# "), case.name


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_real_message(case):
    wrong = grade(case)
    if case.known_wrong:
        assert wrong is not None, f"{case.name} is right now: remove its `# known:` line"
        pytest.xfail(f"{case.one('known')}: {wrong}")
    assert wrong is None, wrong


def test_the_readme_states_the_tally():
    line = tally_line(*tally(CASES))
    assert line in README.read_text(encoding="utf-8"), (
        f"run `python scripts/real_message_tally.py --write`: {line}"
    )
