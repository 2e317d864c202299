"""Terminal rendering of ``headfit evaluate`` and ``headfit predict`` (the JSON is their ``to_dict``)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from headfit.evaluation.run import EvaluateRun, PredictRun

SHOWN_IMAGES = 20  # predict prints one line per image up to this many, then a count


def render_evaluation(run: EvaluateRun) -> list[Any]:
    """The header, a per-class table with an `all` row, the summary line and the notes."""
    from rich.table import Table

    report = run.report
    header = (
        f"evaluated `{run.checkpoint}` on `{run.data}`: {_count(report.images, 'image')}, "
        f"{_count(run.boxes, 'box')}, {_count(len(report.per_class), 'class')} ({run.device}, {run.seconds:.1f} s)"
    )
    table = Table(show_edge=False, pad_edge=False)
    for name, justify in (
        ("class", "left"),
        ("id", "right"),
        ("ground truth", "right"),
        ("detections", "right"),
        ("AP", "right"),
        ("AP50", "right"),
    ):
        table.add_column(name, justify=justify)
    for row in report.per_class:
        table.add_row(
            escape(row.name),
            str(row.id),
            str(row.ground_truth),
            str(row.detections),
            _ap(row.AP),
            _ap(row.AP50),
        )
    table.add_section()
    truth = sum(r.ground_truth for r in report.per_class)
    table.add_row(
        "all", "", str(truth), str(report.detections), _ap(report.AP), _ap(report.AP50), style="bold"
    )
    summary = "  ".join(
        f"{name} {_ap(getattr(report, name))}"
        for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
    )
    if report.AR_max is not None:
        summary += f"  AR{report.max_dets} {_ap(report.AR_max)}"
    parts: list[Any] = [escape(header), table, f"{summary}  (COCO box metrics, maxDets {report.max_dets})"]
    parts += [f"[blue]note[/]: {escape(note)}" for note in run.notes]
    without = [r.name for r in report.per_class if r.ground_truth == 0]
    if without:
        parts.append(
            f"[blue]note[/]: no ground truth for {escape(', '.join(without))}: their AP is undefined (-)"
        )
    return parts


def render_prediction(run: PredictRun) -> list[Any]:
    """One line per image (what was found), then the files written."""
    parts: list[Any] = []
    for image in run.images[:SHOWN_IMAGES]:
        counts = run.counts(image)
        found = ", ".join(f"{n} {name}" for name, n in counts.most_common()) or "nothing"
        parts.append(escape(f"{image}: {found}"))
    if len(run.images) > SHOWN_IMAGES:
        parts.append(f"... and {len(run.images) - SHOWN_IMAGES} more images")
    parts.append(
        f"{_count(len(run.records), 'detection')} with score >= {run.conf:g} on {_count(len(run.images), 'image')} "
        f"({run.device}, {run.seconds:.1f} s)"
    )
    if run.drawn:
        parts.append(escape(f"wrote {_count(len(run.drawn), 'annotated image')} to `{run.out}`"))
    if run.results is not None:
        parts.append(
            escape(f"wrote `{run.results}` (COCO results: image_id, category_id, bbox [x, y, w, h], score)")
        )
    return parts


def _ap(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith(('s', 'x')) else 's'}"
