"""How many real messages the test suite holds and how many explain diagnoses right: the README's tally.

Run ``python scripts/real_message_tally.py`` to print it, ``--write`` to put it in the README (between
the ``real-message-tally`` markers); ``tests/test_explain_real_messages.py`` checks the README says it.
The grading is the test suite's own (``tests/real_messages.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from real_messages import all_cases, grade, tally, tally_line  # noqa: E402 - after the path is set

README = ROOT / "README.md"
START, END = "<!-- real-message-tally -->", "<!-- /real-message-tally -->"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update the README's tally")
    parser.add_argument("--wrong", action="store_true", help="list the cases diagnosed wrong, and how")
    args = parser.parse_args()
    cases = all_cases()
    line = tally_line(*tally(cases))
    print(line)
    if args.wrong:
        for case in cases:
            wrong = grade(case)
            if wrong:
                print(f"  {case.name}: {wrong[:200]}")
    if args.write:
        text = README.read_text(encoding="utf-8")
        head, start, rest = text.partition(START)
        _, end, tail = rest.partition(END)
        if not start or not end:
            raise SystemExit(f"README.md has no {START} ... {END} block")
        README.write_text(f"{head}{START}\n{line}\n{END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
