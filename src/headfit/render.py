"""Renderers of headfit's data. The terminal view is rustc-like; the JSON view is ``to_dict()``.

Renderers never decide anything: they lay out what a Diagnosis or Problem already says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.text import Text

from headfit.diagnosis import Cause, Diagnosis, Location, Problem

if TYPE_CHECKING:
    from rich.console import Console

# every Text.from_markup passes emoji=False: `:name:` in an error message is not an emoji (and loading
# rich's emoji table would cost `headfit explain` several ms of its start-up)


def diagnosis_text(d: Diagnosis) -> Text:
    """``error[HF101]: summary``, the location, ``= note:`` facts, then ranked causes with ``help:``."""
    if not d.recognised:
        lines = [f"[bold yellow]note[/]: {escape(d.summary)}"]
        if d.reason:
            lines.append(f"  [blue]=[/] {escape(d.reason)}")
        if d.message:
            lines.append(f"  [blue]=[/] message: {escape(_clip(d.message))}")
        return Text.from_markup("\n".join(lines), emoji=False)
    lines = [f"[bold red]error[{d.code}][/][bold]: {escape(d.summary)}[/]"]
    if d.error_type or d.message:
        lines.append(f"  [blue]-->[/] {escape(d.error_type or 'error')}: {escape(_clip(d.message))}")
    for label, loc in (("in", d.location), ("from", d.user_location)):
        if loc is not None:
            lines.extend(_location_lines(label, loc))
    for fact in d.facts:
        lines.append(f"  [blue]= note:[/] {escape(fact)}")
    lines.extend(_cause_lines(d.causes))
    return Text.from_markup("\n".join(lines), emoji=False)


def problem_text(p: Problem) -> Text:
    """A check finding in the same layout as a diagnosis."""
    where = (f"`{p.module}`" if p.module else "the model") + (f".`{p.attribute}`" if p.attribute else "")
    lines = [f"[bold red]error[{p.code}][/][bold]: {escape(p.summary)}[/]", f"  [blue]-->[/] {escape(where)}"]
    lines.extend(f"  [blue]= note:[/] {escape(fact)}" for fact in p.facts)
    if p.fix:
        lines.append(f"  [bold cyan]help:[/] {escape(p.fix)}")
    return Text.from_markup("\n".join(lines), emoji=False)


def print_diagnosis(d: Diagnosis, console: Console) -> None:
    console.print(diagnosis_text(d))


def _location_lines(label: str, loc: Location) -> list[str]:
    lines = []
    parts = []
    if loc.module is not None:
        module = loc.module or "<model>"
        parts.append(f"module `{module}`" + (f" ({loc.module_type})" if loc.module_type else ""))
    if loc.file:
        parts.append(f"{loc.file}:{loc.line}" if loc.line else loc.file)
    if parts:
        lines.append(f"  [blue]{label}[/] {escape(' at '.join(parts))}")
    if loc.source:
        gutter = str(loc.line or "")
        lines.append(f"  [blue]{gutter:>4} |[/] {escape(loc.source.strip())}")
    return lines


def _cause_lines(causes: list[Cause]) -> list[str]:
    lines = []
    for i, cause in enumerate(causes, 1):
        where = ""
        if cause.module is not None:
            where = f" [dim](`{escape(cause.module or '<model>')}`"
            where += f".`{escape(cause.attribute)}`)[/]" if cause.attribute else ")[/]"
        lines.append(f"  [bold]cause {i}[/] [dim]({cause.confidence:.0%})[/]: {escape(cause.summary)}{where}")
        if cause.fix:
            lines.append(f"    [bold cyan]help:[/] {escape(cause.fix)}")
    return lines


def _clip(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
