"""The terminal renderer of a ``DataReport`` (the JSON renderer is ``DataReport.to_dict``).

Problems print in rustc's layout, grouped by code, at most ``SHOWN_PER_CODE`` of each (``--json``
lists every one); then the notes, the stats tables, what ``--fix`` changed, and a verdict line.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from headfit.datasets.problems import Problem
from headfit.datasets.report import DataReport, FixResult

if TYPE_CHECKING:
    from rich.console import RenderableType

SHOWN_PER_CODE = 5
SHOWN_CHANGES = 8


def report_renderables(report: DataReport) -> list[RenderableType]:
    from rich.text import Text

    parts: list[RenderableType] = [_summary_table(report), _class_table(report)]
    for code, problems in _by_code(report.problems).items():
        for problem in problems[:SHOWN_PER_CODE]:
            parts += [Text(""), problem_text(problem)]
        if len(problems) > SHOWN_PER_CODE:
            more = len(problems) - SHOWN_PER_CODE
            parts.append(
                Text.from_markup(
                    f"[dim]... and {more:,} more {code} problem{'s' if more > 1 else ''} (`--json` lists all)[/]"
                )
            )
    if report.notes:
        parts.append(Text(""))
        parts += [_note(n) for n in report.notes]
    if report.fix is not None:
        parts.append(Text(""))
        parts += fix_renderables(report.fix)
    parts += [Text(""), _verdict(report)]
    return parts


def problem_text(problem: Problem):
    from rich.markup import escape
    from rich.text import Text

    lines = [f"[bold red]error[{problem.code}][/][bold]: {escape(problem.summary)}[/]"]
    where = _where(problem)
    if where:
        lines.append(f"  [blue]-->[/] {escape(where)}")
    lines += [f"  [blue]= note:[/] {escape(fact)}" for fact in problem.facts]
    lines.append(f"  [bold cyan]help:[/] {escape(problem.fix)}")
    return Text.from_markup("\n".join(lines), emoji=False)


def _where(problem: Problem) -> str:
    parts = []
    if problem.image_id is not None:
        parts.append(f"image {problem.image_id}")
    if problem.annotation_id is not None:
        parts.append(f"annotation {problem.annotation_id}")
    where = ", ".join(parts)
    if problem.file:
        where += f" ({problem.file})" if where else problem.file
    return where


def _note(note: str):
    from rich.markup import escape
    from rich.text import Text

    return Text.from_markup(f"[blue]note[/]: {escape(note)}", emoji=False)


def _by_code(problems: list[Problem]) -> dict[str, list[Problem]]:
    grouped: dict[str, list[Problem]] = {}
    for problem in problems:
        grouped.setdefault(problem.code, []).append(problem)
    return dict(sorted(grouped.items()))


def _summary_table(report: DataReport):
    from rich.table import Table

    stats = report.stats
    split = f", split {stats.split}" if stats.split else ""
    table = Table(
        title=f"{stats.source} ({stats.format}{split})",
        title_justify="left",
        show_header=False,
        show_edge=False,
        pad_edge=False,
    )
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "images", f"{stats.images:,}" + (f" ({stats.negatives:,} without boxes)" if stats.negatives else "")
    )
    table.add_row("boxes", f"{stats.annotations:,}" + (f" ({stats.crowd:,} crowd)" if stats.crowd else ""))
    table.add_row("classes", f"{stats.classes:,}")
    table.add_row(
        "boxes per image",
        f"max {stats.boxes_per_image_max:,}, p99 {stats.boxes_per_image_p99:,}, mean {stats.boxes_per_image_mean:.1f}",
    )
    table.add_row(
        "box sizes",
        f"small {stats.small:,}, medium {stats.medium:,}, large {stats.large:,} (COCO areas: < 32², < 96², larger)",
    )
    table.add_row("image sizes", _sizes(report))
    return table


def _sizes(report: DataReport) -> str:
    stats = report.stats
    common = ", ".join(f"{w}x{h} ({n:,})" for w, h, n in stats.image_sizes[:3])
    if len(stats.image_sizes) > 1 and stats.smallest and stats.largest:
        common += f"; from {stats.smallest[0]}x{stats.smallest[1]} to {stats.largest[0]}x{stats.largest[1]}"
    if stats.unreadable:
        common += f"; {stats.unreadable:,} unknown"
    return common or "none readable"


def _class_table(report: DataReport):
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for name, justify in (
        ("id", "right"),
        ("class", "left"),
        ("index", "right"),
        ("boxes", "right"),
        ("images", "right"),
    ):
        table.add_column(name, justify=justify)
    for c in report.stats.per_class:
        style = "yellow" if c.boxes == 0 else None
        table.add_row(str(c.id), c.name, str(c.index), f"{c.boxes:,}", f"{c.images:,}", style=style)
    return table


def fix_renderables(fix: FixResult) -> list[RenderableType]:
    from rich.markup import escape
    from rich.text import Text

    counts = Counter(c.action for c in fix.changes)
    summary = ", ".join(f"{n:,} {action}" for action, n in counts.most_common()) or "nothing to change"
    parts: list[RenderableType] = [
        Text.from_markup(
            f"[bold]fix[/]: wrote `{escape(str(fix.out))}` ({fix.images:,} images, {fix.annotations:,} boxes); {summary}"
        )
    ]
    for change in fix.changes[:SHOWN_CHANGES]:
        parts.append(
            Text.from_markup(
                f"  [dim]{change.action}[/] {escape(change.summary)}"
                + (f" [dim]({change.code})[/]" if change.code else "")
            )
        )
    if len(fix.changes) > SHOWN_CHANGES:
        parts.append(
            Text.from_markup(
                f"  [dim]... and {len(fix.changes) - SHOWN_CHANGES:,} more changes (`--json` lists all)[/]"
            )
        )
    if fix.clean:
        parts.append(Text.from_markup(f"[bold green]ok[/]: `{escape(str(fix.out))}` checks clean"))
    else:
        codes = ", ".join(sorted({p.code for p in fix.remaining}))
        parts.append(
            Text.from_markup(
                f"[bold red]error[/]: `{escape(str(fix.out))}` still has {len(fix.remaining)} problems ({codes}): please report this"
            )
        )
    return parts


def _verdict(report: DataReport):
    from rich.markup import escape
    from rich.text import Text

    source = escape(str(report.source))
    if report.ok:
        return Text.from_markup(f"[bold green]ok[/]: no problem found in `{source}`")
    counts = Counter(p.code for p in report.problems)
    kinds = ", ".join(f"{code} x{n:,}" if n > 1 else code for code, n in sorted(counts.items()))
    n = len(report.problems)
    return Text.from_markup(f"[bold red]{n:,} problem{'s' if n > 1 else ''}[/] found in `{source}` ({kinds})")
