"""``headfit check MODEL``: head lint + meta-device shape trace; a module table, then each problem."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from headfit.cli.app import console, json_flag, print_json

if TYPE_CHECKING:
    from headfit.check import CheckReport

AUTO_DEPTH_ROWS = 40  # more traced calls than this: the table shows two levels unless --depth says


@click.command("check")
@click.argument("model")
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="SPEC",
    help="A positional input: `2x3x224x224` or `[3x800x1333,3x600x900]` (repeat for several).",
)
@click.option("--num-classes", type=int, help="Passed to the model builder.")
@click.option("--depth", type=click.IntRange(min=0), help="Show modules at most N levels deep.")
@json_flag("Print one check document.")
def command(
    model: str, inputs: tuple[str, ...], num_classes: int | None, depth: int | None, as_json: bool
) -> None:
    """Lint MODEL's heads and trace it on the meta device (no memory, no weights)."""
    from headfit.check import check
    from headfit.spec import build_model

    built = build_model(model, num_classes=num_classes, device="meta")
    report = check(built, list(inputs) or None, depth=depth, name=model)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report, depth)
    raise SystemExit(0 if report.ok else 1)


def _print_report(report: CheckReport, depth: int | None) -> None:
    from headfit.render import diagnosis_text, problem_text

    out = console()
    out.print(_module_table(report, depth))
    for note in [*report.notes, *report.trace.notes]:
        out.print(f"[blue]note[/]: {note}", highlight=False)
    for problem in report.problems:
        out.print()
        out.print(problem_text(problem))
    if report.diagnosis is not None:
        out.print()
        out.print(diagnosis_text(report.diagnosis))
    out.print()
    out.print(_verdict(report), highlight=False)


def _module_table(report: CheckReport, depth: int | None):
    from rich.table import Table

    from headfit.check import within_depth

    calls = report.trace.calls
    if depth is None and len(calls) > AUTO_DEPTH_ROWS:
        depth = 2
    shown = [c for c in calls if within_depth(c.module, depth)]
    title = f"{report.model} at {' '.join(report.inputs)}"
    if len(shown) < len(calls):
        title += f" ({len(shown)} of {len(calls)} module calls, depth {depth}; --depth N shows more)"
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for name, justify in (
        ("module", "left"),
        ("type", "left"),
        ("input", "left"),
        ("output", "left"),
        ("params", "right"),
    ):
        table.add_column(name, justify=justify, overflow="fold")
    for call in shown:
        style = "bold red" if not call.returned and call.module == report.trace.stopped_at else None
        table.add_row(
            call.module or "<model>",
            call.type,
            _shapes(call.input_shapes),
            _output_cell(call, report),
            f"{call.params:,}",
            style=style,
        )
    return table


def _output_cell(call, report: CheckReport) -> str:
    """The output shapes; a call that did not return either raised (a failed trace) or was cut short in
    data-dependent post-processing after its heads ran (a completed trace)."""
    if call.returned:
        return _shapes(call.output_shapes)
    return "raised" if report.trace.failed else "(post-processing not traced)"


def _shapes(shapes: list[list[int]]) -> str:
    text = ", ".join("x".join(map(str, s)) for s in shapes[:4])
    return text + (f", +{len(shapes) - 4} more" if len(shapes) > 4 else "")


def _verdict(report: CheckReport) -> str:
    if report.ok:
        done = (
            "the trace completed" if report.trace.completed else f"the trace stopped: {report.trace.reason}"
        )
        return f"[bold green]ok[/]: no problem found in `{report.model}` ({report.family} family; {done})"
    count = len(report.problems)
    return f"[bold red]{count} problem{'s' if count > 1 else ''}[/] found in `{report.model}` ({report.family} family)"
