"""``headfit demo``: reproduce the classic FCOS error on a model built here, diagnose it, fix it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from headfit.cli.app import abort, console, json_flag, print_json


@click.command("demo")
@json_flag()
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the checkpoint and the adapted weights in this folder (default: a temporary one).",
)
def command(as_json: bool, keep: Path | None) -> None:
    """Make the classic FCOS head mistake, diagnose it, fix it with `adapt`, and `check` the result."""
    from headfit.demo import run_demo

    if keep is not None:
        try:
            keep.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            abort(f"cannot make the folder `--keep {keep}`: {exc.strerror}", 2)
        run = run_demo(keep)
    else:
        with tempfile.TemporaryDirectory(prefix="headfit-demo-") as tmp:
            run = run_demo(Path(tmp))
    if as_json:
        print_json(run.to_dict())
    else:
        _render(run)
    raise SystemExit(0 if run.ok else 1)


def _render(run) -> None:
    from rich.markup import escape
    from rich.rule import Rule

    from headfit.adapt import render_run
    from headfit.demo import IMAGES, MISTAKE, SPEC
    from headfit.render import diagnosis_text, problem_text

    out = console()
    out.print(Rule("1. the classic mistake"))
    out.print(f"built `{SPEC}` (91 COCO classes) and re-headed it by hand for 2 classes:")
    out.print(f"    {escape(MISTAKE)}", style="cyan")
    out.print(f"forward on {IMAGES} (meta device, {run.seconds_to_error * 1000:.0f} ms) raised:")
    out.print(f"    {escape(run.error)}", style="red")

    out.print(Rule("2. headfit explain (the message alone)"))
    out.print(diagnosis_text(run.diagnosis))

    out.print(Rule("3. headfit check (the broken model)"))
    for problem in run.broken_check.problems:
        out.print(problem_text(problem))
    verdict = (
        "[green]ok[/]" if run.broken_check.ok else f"[red]{len(run.broken_check.problems)} problem(s)[/]"
    )
    out.print(f"check: {verdict}")

    out.print(Rule("4. headfit adapt --num-classes 2 --weights coco.pth"))
    for part in render_run(run.adapt_run):
        out.print(part)

    out.print(Rule("5. headfit check (the adapted model)"))
    if run.fixed_check is None:
        out.print("[red]not checked: adapt did not write a model[/]")
        return
    for problem in run.fixed_check.problems:
        out.print(problem_text(problem))
    traced = len({c.module for c in run.fixed_check.trace.calls})
    verdict = "[green]ok[/]" if run.fixed_check.ok else "[red]problems found[/]"
    out.print(f"check on {IMAGES}: {verdict} ({traced} modules traced on the meta device)")
    for note in run.fixed_check.trace.notes:
        out.print(f"  note: {escape(note)}")
    _render_finetune(out, run.finetune)


def _render_finetune(out, tune) -> None:
    from rich.markup import escape
    from rich.rule import Rule
    from rich.table import Table

    out.print(Rule("6. headfit train (a small FCOS on synthetic shapes)"))
    out.print(
        f"`headfit train {escape(tune.spec)}`: torchvision's FCOS behind a 5-stage conv net (FCOS-ResNet50 "
        f"takes ~15 s a step on a CPU), {tune.train_images} synthetic images, {tune.epochs} epochs = "
        f"{tune.steps} steps in {tune.seconds:.0f} s"
    )
    table = Table("epoch", "train loss", "val AP50", "val AP", box=None)
    for row in tune.rows:
        table.add_row(
            f"{row['epoch']:.0f}",
            f"{row['train_loss']:.3f}",
            f"{row['val_AP50']:.3f}",
            f"{row['val_AP']:.3f}",
        )
    out.print(table)
    verdict = "[green]mAP rises[/]" if tune.rising else "[red]mAP did not rise[/]"
    out.print(f"{verdict}; the run is in {escape(tune.run)} (metrics.csv, best.safetensors, plots/)")
