"""Rewrite ``src/headfit/explain/rule_index.py`` from the ``needs=`` of every ``@rule``.

``headfit explain`` imports a rule module only when a message contains one of its needles; the index of
those needles is generated data, and this is its generator (rich keeps ``_emoji_codes.py`` and the tool
that writes it apart the same way). Run it after adding or changing a rule:
``python scripts/write_rule_index.py``; ``tests/test_explain_index.py`` checks the index is up to date.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from headfit.explain.engine import needles_by_module  # noqa: E402 - after the path is set

INDEX = Path(__file__).resolve().parents[1] / "src" / "headfit" / "explain" / "rule_index.py"
MARKER = "NEEDLES: dict[str, tuple[str, ...]] = "


def write(path: Path = INDEX) -> None:
    """Replace the ``NEEDLES`` literal in ``path``, keeping the docstring and anything after it."""
    head, marker, tail = path.read_text(encoding="utf-8").partition(MARKER)
    if not marker:
        raise SystemExit(f"{path} has no `{MARKER.strip()}` line to rewrite")
    _, _, rest = tail.partition("\n}\n")
    path.write_text(f"{head}{marker}{source(needles_by_module())}\n{rest}", encoding="utf-8")


def source(index: dict[str, tuple[str, ...]]) -> str:
    """The dict as ruff would format it: one needle a line."""
    lines = ["{"]
    for module, needles in index.items():
        if len(needles) <= 1:  # ruff keeps () and (x,) on one line
            lines.append(f"    {quote(module)}: ({''.join(quote(n) + ',' for n in needles)}),")
            continue
        lines.append(f"    {quote(module)}: (")
        lines.extend(f"        {quote(needle)}," for needle in needles)
        lines.append("    ),")
    return "\n".join([*lines, "}"])


def quote(text: str) -> str:
    if '"' in text and "'" not in text:
        return repr(text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    write()
