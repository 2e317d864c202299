"""What the ``headfit run`` script tests share: the case table's row, running scripts as a user would,
and the assertion on a diagnosis document."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "scripts"


@dataclass(frozen=True)
class Case:
    script: str
    module: str | None  # the failing module's path in the user's model (None: the failure is in the data)
    datum: str  # an attribute, value or tensor the diagnosis must name (in facts, summary or first cause)
    fix: str  # a regular expression the first cause's fix must match


def fix_is(text: str) -> str:
    """A fix pattern that matches ``text`` literally."""
    return re.escape(text)


def run_headfit(
    script: Path, *args: str, json_path: Path | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """``headfit run [--json PATH] SCRIPT ARGS`` in a subprocess, as a user would type it."""
    command = [sys.executable, "-m", "headfit", "run"]
    if json_path is not None:
        command += ["--json", str(json_path)]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [*command, str(script), *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def as_params(cases: list[Case], fast: set[str] | None = None) -> list:
    """The cases as pytest parameters, those outside ``fast`` marked slow (each costs a subprocess
    that imports torch: the fast suite keeps a few of every kind, ``pytest -m slow`` runs the rest)."""
    slow = () if fast is None else (pytest.mark.slow,)
    return [
        pytest.param(case, id=case.script, marks=() if fast is None or case.script in fast else slow)
        for case in cases
    ]


def selected_cases(request: pytest.FixtureRequest, cases: list[Case], also: tuple[str, ...] = ()) -> list[Case]:
    """The cases this pytest session will run in the requesting module (after ``-m`` and ``-k``), and
    those named in ``also`` (read by the module's other tests), so a module fixture runs only their
    scripts."""
    chosen = {
        item.callspec.params["case"].script
        for item in request.session.items
        if item.module is request.module and "case" in getattr(getattr(item, "callspec", None), "params", {})
    }
    return [case for case in cases if case.script in chosen or case.script in also]


def run_cases(cases: list[Case], out: Path) -> dict[str, tuple[subprocess.CompletedProcess, dict]]:
    """Run every case's script once, two at a time; map its name to (process, diagnosis document)."""

    def run_one(case: Case):
        path = out / f"{case.script}.json"
        proc = run_headfit(SCRIPTS / f"{case.script}.py", json_path=path)
        return case.script, (proc, json.loads(path.read_text()) if path.exists() else {})

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run_one, cases))


def assert_diagnosed(case: Case, proc: subprocess.CompletedProcess, doc: dict) -> None:
    """Exit 1, a recognised diagnosis naming the module, the datum, and the expected fix first."""
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert doc.get("code"), f"not recognised: {doc}"
    top = doc["causes"][0]
    if case.module is not None:
        located = {doc["location"]["module"] if doc["location"] else None, top["module"]}
        assert case.module in located, (located, doc)
    said = json.dumps([doc["summary"], doc["facts"], top])
    assert case.datum in said, said
    assert re.search(case.fix, top["fix"] or ""), (top, doc["causes"][1:3])


def raised(fn) -> BaseException:
    """The exception ``fn()`` raises, with its frames (the live diagnosis reads them)."""
    try:
        fn()
    except Exception as exc:
        return exc
    raise AssertionError("expected an exception")
