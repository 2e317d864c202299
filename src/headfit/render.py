"""The terminal view of every report headfit makes; the JSON view is each report's ``to_dict()``.

``render(obj)`` is the one dispatch point (``functools.singledispatch``): it takes a Diagnosis, a
Problem, a CheckReport, a SizeAnswer, a LoadReport, an AdaptRun or a DemoRun and returns a rich
renderable; the commands just print it. Renderers never decide anything: they lay out what the
report already says. Diagnoses read like rustc's: ``error[HF101]: summary``, ``-->`` the location,
``= note:`` facts, then ranked causes with ``help:``.

This module must not import torch (``headfit explain`` renders through it), so the report types
whose modules import torch are registered by their qualified name and bound on first use.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.markup import escape
from rich.text import Text

from headfit.diagnosis import Cause, Diagnosis, Location, Problem
from headfit.inputs import shape_text
from headfit.modulepath import module_name

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

    from headfit.check import CheckReport
    from headfit.demo import DemoRun, FinetuneRun
    from headfit.saved import AdaptRun
    from headfit.sizes import SizeAnswer
    from headfit.verify import Verification
    from headfit.weights import LoadReport, ShapeComparison

AUTO_DEPTH_ROWS = 40  # more traced calls than this: the check table shows two levels unless --depth says
_BY_NAME: dict[str, Callable[[Any], RenderableType]] = {}  # "module.Class" -> renderer, bound lazily

# every Text.from_markup passes emoji=False: `:name:` in an error message is not an emoji (and loading
# rich's emoji table would cost `headfit explain` several ms of its start-up)


@functools.singledispatch
def render(obj: Any) -> RenderableType:
    """The terminal view of a headfit report (see the module docstring for the types it takes)."""
    for cls in type(obj).__mro__:
        renderer = _BY_NAME.get(f"{cls.__module__}.{cls.__qualname__}")
        if renderer is not None:
            render.register(cls, renderer)
            return renderer(obj)
    raise TypeError(
        f"render() takes a Diagnosis, Problem, CheckReport, SizeAnswer, LoadReport, AdaptRun or DemoRun, "
        f"not {type(obj).__name__}"
    )


def _renders(
    qualified_name: str,
) -> Callable[[Callable[[Any], RenderableType]], Callable[[Any], RenderableType]]:
    def register(renderer: Callable[[Any], RenderableType]) -> Callable[[Any], RenderableType]:
        _BY_NAME[qualified_name] = renderer
        return renderer

    return register


def _group(*parts: RenderableType) -> Group:
    """Parts one below the other; strings are headfit's markup (never emoji: `:x:` in a path is text)."""
    return Group(*(Text.from_markup(p, emoji=False) if isinstance(p, str) else p for p in parts))


# ---------------------------------------------------------------------------------------------------
# Diagnosis and Problem


@render.register
def diagnosis_text(d: Diagnosis) -> Text:
    """``error[HF101]: summary``, ``-->`` where, the error raised, ``= note:`` facts, ranked causes."""
    if not d.recognised:
        lines = [f"[bold yellow]note[/]: {escape(d.summary)}"]
        if d.reason:
            lines.append(f"  [blue]=[/] {escape(d.reason)}")
        if d.message:
            lines.append(f"  [blue]=[/] message: {escape(_clip(d.message))}")
        return Text.from_markup("\n".join(lines), emoji=False)
    lines = [f"[bold red]error[{d.code}][/][bold]: {escape(d.summary)}[/]"]
    if d.location is not None:
        lines.extend(_location_lines("-->", d.location))
    if d.user_location is not None:
        lines.extend(_location_lines(":::", d.user_location, "called from "))
    if d.error_type or d.message:
        lines.append(f"  [blue]= raised:[/] {escape(d.error_type or 'error')}: {escape(_clip(d.message))}")
    lines.extend(f"  [blue]= note:[/] {escape(fact)}" for fact in d.facts)
    lines.extend(_cause_lines(d.causes))
    return Text.from_markup("\n".join(lines), emoji=False)


@render.register
def problem_text(p: Problem) -> Text:
    """A check finding in the same layout as a diagnosis."""
    where = (f"`{module_name(p.module)}`" if p.module else "the model") + (f".`{p.attribute}`" if p.attribute else "")
    lines = [f"[bold red]error[{p.code}][/][bold]: {escape(p.summary)}[/]", f"  [blue]-->[/] {escape(where)}"]
    lines.extend(f"  [blue]= note:[/] {escape(fact)}" for fact in p.facts)
    if p.fix:
        lines.append(f"  [bold cyan]help:[/] {escape(p.fix)}")
    return Text.from_markup("\n".join(lines), emoji=False)


def _location_lines(arrow: str, loc: Location, prefix: str = "") -> list[str]:
    parts = []
    if loc.module is not None:
        parts.append(f"module `{module_name(loc.module)}`" + (f" ({loc.module_type})" if loc.module_type else ""))
    if loc.file:
        parts.append(f"{loc.file}:{loc.line}" if loc.line else loc.file)
    lines = [f"  [blue]{arrow}[/] {escape(prefix + ' at '.join(parts))}"] if parts else []
    if loc.source:
        gutter = str(loc.line or "")
        lines.append(f"  [blue]{gutter:>4} |[/] {escape(loc.source.strip())}")
    return lines


def _cause_lines(causes: list[Cause]) -> list[str]:
    lines = []
    for i, cause in enumerate(causes, 1):
        where = ""
        if cause.module is not None:
            where = f" [dim](`{escape(module_name(cause.module or ''))}`"
            where += f".`{escape(cause.attribute)}`)[/]" if cause.attribute else ")[/]"
        lines.append(f"  [bold]cause {i}[/] [dim]({cause.confidence:.0%})[/]: {escape(cause.summary)}{where}")
        if cause.fix:
            lines.append(f"    [bold cyan]help:[/] {escape(cause.fix)}")
    return lines


def _clip(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------------
# check


@_renders("headfit.check.CheckReport")
def _check_report(report: CheckReport) -> RenderableType:
    """The per-module table, notes, each finding once, the saved weights' table, and the verdict."""
    parts: list[RenderableType] = [_module_table(report)]
    parts.extend(f"[blue]note[/]: {escape(note)}" for note in [*report.notes, *report.trace.notes])
    for finding in report.findings():
        parts.extend(["", render(finding)])
    if report.weights is not None and not report.weights.ok:
        parts.extend(["", _shape_table(report.weights)])
    parts.extend(["", _verdict(report)])
    return _group(*parts)


def _module_table(report: CheckReport) -> Table:
    from rich.table import Table

    calls, depth = report.trace.calls, report.depth
    if depth is None and len(calls) > AUTO_DEPTH_ROWS:
        depth = 2
    shown = report.calls_within(depth)
    title = f"{report.model} at {' '.join(report.inputs)}"
    if len(shown) < len(calls):
        title += f" ({len(shown)} of {len(calls)} module calls, depth {depth}; --depth N shows more)"
    table = Table(title=escape(title), title_justify="left", show_edge=False, pad_edge=False)
    for name, justify in (("module", "left"), ("type", "left"), ("input", "left"), ("output", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    table.add_column("params", justify="right", overflow="fold")
    for call in shown:
        style = "bold red" if not call.returned and call.module == report.trace.stopped_at else None
        table.add_row(
            escape(call.module or "<model>"),
            call.type,
            _shapes(call.input_shapes),
            _output_cell(call, report),
            f"{call.params:,}",
            style=style,
        )
    return table


def _output_cell(call: Any, report: CheckReport) -> str:
    """The output shapes; a call that did not return either raised (a failed trace) or was cut short in
    data-dependent post-processing after its heads ran (a completed trace)."""
    if call.returned:
        return _shapes(call.output_shapes)
    return "raised" if report.trace.failed else "(post-processing not traced)"


def _shapes(shapes: list[list[int]]) -> str:
    text = ", ".join(shape_text(s) for s in shapes[:4])
    return text + (f", +{len(shapes) - 4} more" if len(shapes) > 4 else "")


def _verdict(report: CheckReport) -> Text:
    if report.ok:
        done = (
            "the trace completed" if report.trace.completed else f"the trace stopped: {report.trace.reason}"
        )
        markup = f"[bold green]ok[/]: no problem found in `{escape(report.model)}` ({report.family} family; {escape(done)})"
    else:
        count = sum(isinstance(f, Problem) for f in report.findings())
        markup = (
            f"[bold red]{count} problem{'s' if count > 1 else ''}[/] found in `{escape(report.model)}` "
            f"({report.family} family)"
        )
    return Text.from_markup(markup, emoji=False)


def _shape_table(comparison: ShapeComparison, limit: int = 12) -> Table:
    """The tensors of a saved weights file that do not fit the rebuilt model, with both shapes."""
    from rich.table import Table

    table = Table(
        title=escape(f"{comparison.source}: tensors that do not fit"),
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    for name in ("tensor", "file", "model"):
        table.add_column(name, overflow="fold")
    rows = [
        (s.key, shape_text(s.checkpoint_shape, "list"), shape_text(s.model_shape, "list"))
        for s in comparison.mismatched
    ]
    rows += [(key, "absent", "") for key in comparison.missing]
    rows += [(key, "", "absent") for key in comparison.unexpected]
    for key, saved, model in rows[:limit]:
        table.add_row(escape(key), saved, model)
    if len(rows) > limit:
        table.add_row(f"... {len(rows) - limit} more", "", "")
    return table


# ---------------------------------------------------------------------------------------------------
# sizes


@_renders("headfit.sizes.SizeAnswer")
def _size_answer(answer: SizeAnswer) -> RenderableType:
    name = escape(answer.model or "the model")
    if answer.accepted_any:
        lines = [f"[bold]{name}[/] accepts [bold green]{escape(answer.summary)}[/]"]
    else:
        lines = [f"[bold]{name}[/]: [bold red]{escape(answer.summary)}[/]"]
    lines.extend(f"  [blue]= note:[/] {escape(note)}" for note in answer.notes)
    tried = ", ".join(f"{h}x{w}{'' if ok else ' (rejected)'}" for h, w, ok in answer.probes)
    lines.append(f"  [blue]= probed on meta:[/] {tried}")
    return Text.from_markup("\n".join(lines), emoji=False)


# ---------------------------------------------------------------------------------------------------
# weights and adapt


@_renders("headfit.weights.LoadReport")
def _load_report(report: LoadReport, limit: int = 8) -> RenderableType:
    """A short table: counts per outcome, and the skipped tensors with both shapes."""
    from rich.table import Table

    title = f"[bold]loaded[/] {escape(str(report.source))}"
    if report.entry:
        title += f" (entry `{escape(report.entry)}`)"
    parts: list[RenderableType] = [title]  # a line of its own: a title would wrap a long path at the table
    table = Table(show_header=True, header_style="bold")
    table.add_column("outcome")
    table.add_column("tensors", justify="right")
    table.add_column("detail", overflow="fold")
    table.add_row("loaded", str(len(report.loaded)), _stripped_detail(report))
    table.add_row(
        "skipped", str(len(report.skipped)), "shape does not fit the model" if report.skipped else ""
    )
    table.add_row("missing", str(len(report.missing)), escape(_missing_detail(report)))
    table.add_row("unexpected", str(len(report.unexpected)), escape(_first_keys(report.unexpected, limit)))
    parts.append(table)
    if report.skipped:
        skipped = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
        skipped.add_column("skipped tensor")
        skipped.add_column("checkpoint", justify="right")
        skipped.add_column("model", justify="right")
        for s in report.skipped[:limit]:
            skipped.add_row(
                escape(s.key), shape_text(s.checkpoint_shape, "list"), shape_text(s.model_shape, "list")
            )
        if len(report.skipped) > limit:
            skipped.add_row(f"... {len(report.skipped) - limit} more", "", "")
        parts.append(skipped)
    parts.extend(f"note: {escape(note)}" for note in report.notes)
    return _group(*parts)


def _stripped_detail(report: LoadReport) -> str:
    return f"stripped prefix `{escape(report.stripped_prefix)}`" if report.stripped_prefix else ""


def _missing_detail(report: LoadReport) -> str:
    if report.missing_only_counters():
        return "only BatchNorm `num_batches_tracked` counters (harmless)"
    return _first_keys(report.missing, 3)


def _first_keys(keys: list[str], limit: int) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... {len(keys) - limit} more" if len(keys) > limit else "")


@_renders("headfit.saved.AdaptRun")
def _adapt_run(run: AdaptRun) -> RenderableType:
    """``headfit adapt``: what was loaded, what changed, how much is pretrained, verification, the files."""
    parts: list[RenderableType] = []
    if run.saved_source is not None:
        parts.append(
            f"rebuilt the saved model {escape(run.saved_source)} from its sidecar (`{escape(run.spec)}`)"
        )
    if run.load is not None:
        parts.append(render(run.load))
    report = run.report
    verb = "adapted" if run.pretrained else "re-headed"
    parts.append(f"[bold]{verb}[/] `{escape(run.spec)}` for {report.num_classes} classes ({report.family})")
    parts.extend(f"  replaced `{escape(path)}`" for path in report.replaced)
    parts.extend(f"  set `{escape(k)}` = {escape(repr(v))}" for k, v in report.attributes.items())
    parts.extend(f"  note: {escape(note)}" for note in report.notes)
    if report.kept_classes:
        kept = ", ".join(_kept_label(row, report.kept_names, i) for i, row in enumerate(report.kept_classes))
        parts.append(f"  new rows start from pretrained rows {escape(kept)}")
    parts.append(f"  {escape(_pretrained_line(run))}")
    parts.extend(f"  note: {escape(note)}" for note in run.notes)
    parts.extend(_verification_lines(report.verification))
    if run.output is not None:
        parts.append(f"[bold]wrote[/] {escape(str(run.output))} and {escape(str(run.sidecar))}")
        trust = " --trust-code" if run.trust_code_needed else ""
        parts.append(f"  check it: `headfit check {escape(shlex.quote(str(run.output)))}{trust}`")
    return _group(*parts)


def _pretrained_line(run: AdaptRun) -> str:
    new = run.tensors - run.pretrained
    if run.load is None:
        return (
            f"weights: none loaded (no --weights): all {run.tensors} tensors are the builder's random "
            "init; headfit never downloads"
        )
    source = "the saved model" if run.saved_source else "the checkpoint"
    line = f"weights: {run.pretrained} of {run.tensors} tensors come from {source}"
    if run.partial:
        return line + f"; {new} are new or keep their random init (--partial-load)"
    return line + (f"; the {new} of the new head are new" if new else "")


def _kept_label(row: int, names: list[str] | None, i: int) -> str:
    name = names[i] if names else None
    return f"{row} ({name})" if name else str(row)


def _verification_lines(check: Verification | None) -> list[str]:
    if check is None:
        return ["verification: skipped"]
    verdict = "[green]ok[/]" if check.ok else "[bold red]failed[/]"
    lines = [f"[bold]verification:[/] {verdict} ({check.seconds:.1f} s)"]
    lines.extend(f"  [green]✓[/] {escape(step)}" for step in check.steps)
    lines.extend(f"  [red]✗[/] {escape(why)}" for why in check.failures)
    return lines


# ---------------------------------------------------------------------------------------------------
# demo


@_renders("headfit.demo.DemoRun")
def _demo_run(run: DemoRun) -> RenderableType:
    from rich.rule import Rule

    parts: list[RenderableType] = [
        Rule("1. the classic mistake"),
        f"built `{escape(run.spec)}` (91 COCO classes) and re-headed it by hand for {run.classes} classes:",
        Text(f"    {run.mistake}", style="cyan"),
        f"forward on {run.images} (meta device, {run.seconds_to_error * 1000:.0f} ms) raised:",
        Text(f"    {run.error}", style="red"),
        Rule("2. headfit explain (the message alone)"),
        render(run.diagnosis),
        Rule("3. headfit check (the broken model)"),
    ]
    problems = [f for f in run.broken_check.findings() if isinstance(f, Problem)]
    parts.extend(render(problem) for problem in problems)
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    parts.append("check: [green]ok[/]" if run.broken_check.ok else f"check: [red]{count}[/]")
    parts.extend(
        [Rule(f"4. headfit adapt --num-classes {run.classes} --weights coco.pth"), render(run.adapt_run)]
    )
    parts.append(Rule("5. headfit check (the adapted model)"))
    if run.fixed_check is None:
        parts.append("[red]not checked: adapt did not write a model[/]")
        return _group(*parts)
    parts.extend(render(p) for p in run.fixed_check.problems)
    traced = len({c.module for c in run.fixed_check.trace.calls})
    verdict = "[green]ok[/]" if run.fixed_check.ok else "[red]problems found[/]"
    parts.append(f"check on {run.images}: {verdict} ({traced} modules traced on the meta device)")
    parts.extend(f"  note: {escape(note)}" for note in run.fixed_check.trace.notes)
    if run.finetune is not None:
        parts.extend(_finetune_parts(run.finetune))
    return _group(*parts)


def _finetune_parts(tune: FinetuneRun) -> list[RenderableType]:
    from rich.rule import Rule
    from rich.table import Table

    table = Table("epoch", "train loss", "val AP50", "val AP", box=None)
    for row in tune.rows:
        table.add_row(
            f"{row['epoch']:.0f}",
            f"{row['train_loss']:.3f}",
            f"{row['val_AP50']:.3f}",
            f"{row['val_AP']:.3f}",
        )
    verdict = "[green]mAP rises[/]" if tune.rising else "[red]mAP did not rise[/]"
    return [
        Rule("6. headfit train (a small FCOS on synthetic shapes)"),
        f"`headfit train {escape(tune.spec)}`: torchvision's FCOS behind a 5-stage conv net (FCOS-ResNet50 "
        f"takes ~15 s a step on a CPU), {tune.train_images} synthetic images, {tune.epochs} epochs = "
        f"{tune.steps} steps in {tune.seconds:.0f} s",
        table,
        f"{verdict}; the run is in {escape(tune.run)} (metrics.csv, best.safetensors, plots/)",
    ]
