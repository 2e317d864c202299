"""The catalogue of diagnosis codes, read from ``codes/HFnnn.md`` (one file per code, as rustc does).

Each file starts with a small front matter block::

    ---
    code: HF101
    category: view_size_mismatch
    title: a view or reshape asks for a shape the tensor's size cannot fill
    ---

followed by the long explanation (what it means, a minimal example, how to fix it) in Markdown.
An example fenced as ```` ```python error ```` must raise an error that ``headfit.explain`` diagnoses
with the file's code: ``tests/test_codes.py`` runs it (as rustc runs its ``compile_fail`` examples).
Adding a code means adding one file; nothing else changes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache

# os.path, not pathlib: every diagnosis reads its category here, and `headfit explain` must start fast
CODES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "codes")
_CODE_RE = re.compile(r"^HF\d{3}$")


@dataclass(frozen=True)
class CodeInfo:
    code: str
    category: str
    title: str
    text: str  # the Markdown body, without front matter


def _parse(path: str) -> CodeInfo:
    with open(path, encoding="utf-8") as file:
        raw = file.read()
    meta: dict[str, str] = {}
    body = raw
    if raw.startswith("---\n"):
        head, _, body = raw[4:].partition("\n---\n")
        for line in head.splitlines():
            key, _, value = line.partition(":")
            meta[key.strip()] = value.strip()
    return CodeInfo(
        code=meta.get("code", os.path.basename(path).removesuffix(".md")),
        category=meta.get("category", ""),
        title=meta.get("title", ""),
        text=body.strip() + "\n",
    )


@cache
def all_codes() -> dict[str, CodeInfo]:
    paths = sorted(os.path.join(CODES_DIR, name) for name in os.listdir(CODES_DIR) if _is_code_file(name))
    return {info.code: info for info in map(_parse, paths)}


def _is_code_file(name: str) -> bool:
    return name.startswith("HF") and name.endswith(".md")


def code_info(code: str) -> CodeInfo | None:
    """The catalogue entry for ``code`` (case-insensitive), or None."""
    code = code.strip().upper()
    if not _CODE_RE.match(code):
        return None
    return _one_code(code)


@cache
def _one_code(code: str) -> CodeInfo | None:
    """Read only ``codes/{code}.md`` (a diagnosis needs one category, not the whole catalogue)."""
    path = os.path.join(CODES_DIR, f"{code}.md")
    info = _parse(path) if os.path.exists(path) else None
    return info if info is not None and info.code == code else all_codes().get(code)


def category_of(code: str) -> str:
    info = code_info(code)
    if info is None:
        raise KeyError(f"unknown diagnosis code {code!r}: add codes/{code}.md")
    return info.category
