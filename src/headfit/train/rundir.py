"""The run directory: ``runs/train/exp``, ``exp2``, ... (never an existing one), and its ``args.json``.

``args.json`` holds what it takes to understand and to resume the run: the resolved arguments, the
model spec, the class map, the data fingerprints and ``world_size``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from headfit.errors import UsageError
from headfit.files import atomic_write_text

RESUME_ADVICE = "resume the run with `--resume` (or give `--project` on another disk)"  # ends a failed write

ARGS_FILE = "args.json"
DEFAULT_PROJECT = Path("runs") / "train"
DEFAULT_NAME = "exp"


def new_run_dir(project: Path, name: str) -> Path:
    """Create and return ``project/name``, or ``name2``, ``name3``... when it is taken."""
    if not name or "/" in name or name in (".", ".."):
        raise UsageError(f"--name {name!r} must be a plain folder name such as `exp` or `fcos-trees`")
    try:
        project.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot make the project folder {str(project)!r} ({exc.strerror})") from None
    if not os.access(project, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write runs into {str(project)!r}: the folder is not writable")
    base = re.sub(r"\d+$", "", name) or name
    taken = {p.name for p in project.iterdir()}
    candidates = [name] + [f"{base}{i}" for i in range(2, 10_000)]
    for candidate in candidates:
        if candidate in taken:
            continue
        try:
            (project / candidate).mkdir()  # exclusive: two runs started at once get different folders
        except FileExistsError:
            continue
        return project / candidate
    raise UsageError(f"{str(project)!r} already holds 10,000 runs named {base!r}; give another --name")


def write_args(run: Path, document: dict[str, Any]) -> None:
    atomic_write_text(run / ARGS_FILE, json.dumps(document, indent=2, default=str) + "\n", RESUME_ADVICE)


def read_args(run: Path) -> dict[str, Any]:
    """``RUN/args.json``, or one paragraph saying why ``run`` is not a run directory."""
    if not run.is_dir():
        raise UsageError(
            f"--resume {str(run)!r} is not a folder; give a run directory such as `runs/train/exp`"
        )
    path = run / ARGS_FILE
    if not path.is_file():
        hint = _nearby_runs(run)
        raise UsageError(
            f"--resume {str(run)!r} is not a `headfit train` run: it has no {ARGS_FILE}.{hint} A run "
            "directory holds args.json, metrics.csv, state.pt and the checkpoints"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UsageError(f"cannot read {str(path)!r} as JSON ({exc}); the run cannot be resumed") from None
    if not isinstance(document, dict) or "model" not in document:
        raise UsageError(f"{str(path)!r} was not written by `headfit train` (it names no model)")
    return document


def _nearby_runs(folder: Path) -> str:
    found = sorted(p.parent for p in folder.glob(f"*/{ARGS_FILE}"))[:3]
    if not found:
        return ""
    return " It contains run(s) " + ", ".join(f"`{p}`" for p in found) + "."
