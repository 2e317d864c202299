"""What ``headfit train`` prints: the start-of-run choices, the pre-flight findings, the end of the run.

Plain renderers of the data in ``prepare.TrainPlan`` and ``loop.FitResult`` (rich renderables for
the terminal; ``to_dict`` documents for ``--json``).
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from headfit.train.loop import FitResult
from headfit.train.prepare import TrainPlan


def render_plan(plan: TrainPlan) -> list[Any]:
    """The table of what the run chose and why, then its notes and the images it left out."""
    parts: list[Any] = []
    if plan.resumed:
        parts.append(f"[bold]resuming[/] {escape(str(plan.run))} at {escape(plan.resumed)}")
    if plan.load is not None:
        parts.append(plan.load)
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for choice in plan.choices:
        why = f"  [dim]({escape(choice.why)})[/]" if choice.why else ""
        table.add_row(escape(choice.topic), escape(choice.value) + why)
    parts.append(table)
    if plan.check is not None:
        traced = len({c.module for c in plan.check.trace.calls})
        parts.append(
            f"pre-flight: `headfit check` on {escape(', '.join(plan.check.inputs))}: [green]ok[/] "
            f"({traced} modules traced on the meta device)"
        )
    parts.extend(f"note: {escape(note)}" for note in plan.notes)
    parts.extend(render_data_problems(plan.dropped, "left out"))
    return parts


def render_data_problems(problems: list[Any], verb: str = "problem", limit: int = 20) -> list[str]:
    lines = []
    for p in problems[:limit]:
        where = f"image {p.image_id!r}" if p.image_id is not None else "dataset"
        lines.append(f"  {verb}: [bold]{escape(p.code)}[/] {escape(where)}: {escape(p.summary)}")
        if p.fix and verb == "problem":
            lines.append(f"    help: {escape(p.fix)}")
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return lines


def render_result(result: FitResult, evaluate: str) -> list[str]:
    """The end of the run; ``evaluate`` is the command that scores its best checkpoint on its val data."""
    run = escape(str(result.run))
    lines = []
    if result.stopped_early:
        lines.append(f"[yellow]stopped early:[/] {escape(result.stopped_early)}")
    best = result.best
    if best:
        shown = "  ".join(f"{k} {best[k]:.4f}" for k in ("val_AP", "val_AP50", "val_AP75") if k in best)
        lines.append(f"[bold]best[/] epoch {int(best['epoch'])}: {shown}")
    lines.append(
        f"[bold]done[/]: {result.epochs_done} epoch(s) in {result.seconds:.0f} s "
        f"({result.train_images_per_second:.1f} train images/s); results in {run}"
    )
    lines.append(f"  {run}/best.safetensors, last.safetensors, metrics.csv, plots/")
    lines.append(f"  evaluate it: `{escape(evaluate)}`")
    return lines


def result_document(plan: TrainPlan, result: FitResult) -> dict[str, Any]:
    return {
        "ok": True,
        "run": str(result.run),
        "plan": plan.to_dict(),
        "epochs_done": result.epochs_done,
        "best_epoch": result.best_epoch,
        "best": result.best,
        "last": result.last,
        "stopped_early": result.stopped_early,
        "seconds": round(result.seconds, 2),
        "train_images_per_second": round(result.train_images_per_second, 2),
    }
