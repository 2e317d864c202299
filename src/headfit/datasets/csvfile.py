"""The plain CSV: one row per box, ``image_path,xmin,ymin,xmax,ymax,label`` in pixels (x1 y1 x2 y2).

A header row names the columns (in any order; extra columns are ignored); without one the six columns
are read in that order. ``image_path`` is relative to the CSV's folder (or ``--images DIR``). A row
whose four coordinates are all 0 (or empty) stands for an image without objects, as deepforest writes
one. Classes are the labels, sorted; image ids are the ``image_path`` values as written; annotation
ids are ``file.csv:line``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from headfit.datasets.problems import Problem
from headfit.datasets.records import ClassMap, DetectionDataset
from headfit.datasets.resolve import ImageFinder, attach_headers, new_record
from headfit.errors import UsageError

COLUMNS = ("image_path", "xmin", "ymin", "xmax", "ymax", "label")
ALIASES = {
    "image_path": ("image_path", "image", "filename", "file_name", "file", "path", "image_name"),
    "label": ("label", "class", "class_name", "category", "name"),
}
EXPECTED = (
    "a detection CSV has one row per box with the columns image_path,xmin,ymin,xmax,ymax,label (pixels)"
)


def read_csv(path: Path, images: Path | None = None, split: str | None = None) -> DetectionDataset:
    rows, columns, first_line = _rows(path)
    problems: list[Problem] = []
    notes: list[str] = []
    grouped: dict[str, list] = {}  # image_path -> [boxes, labels, ids]
    marked_empty = 0
    for number, row in enumerate(rows, first_line):
        if not any(cell.strip() for cell in row):
            continue
        image = row[columns["image_path"]].strip() if len(row) > columns["image_path"] else ""
        entry = grouped.setdefault(image, [[], [], []]) if image else None
        parsed = _box(row, columns)
        annotation_id = f"{path.name}:{number}"
        if entry is None or parsed is None:
            problems.append(_malformed(annotation_id, row, image or None))
            continue
        box, label = parsed
        if not any(box):
            marked_empty += 1
            continue
        if not label:
            problems.append(_malformed(annotation_id, row, image, "the label is empty"))
            continue
        entry[0].append(box)
        entry[1].append(label)
        entry[2].append(annotation_id)
    if marked_empty:
        notes.append(
            f"{marked_empty:,} rows have the box 0,0,0,0: read as images without objects (deepforest's convention)"
        )
    finder = ImageFinder([images] if images else [path.parent, path.parent / "images"])
    records = []
    for image, (boxes, labels, ids) in grouped.items():
        file, note = finder.find(image)
        if note:
            notes.append(f"`{image}`: {note}")
        records.append(new_record(image, file, boxes, labels, ids))
    notes += finder.notes()
    if not records:
        raise UsageError(f"`{path}` has no rows with an image and a box: {EXPECTED}")
    attach_headers(records, path, "`image_path` is read relative to the CSV's folder: pass `--images DIR`")
    names = sorted({label for _, labels, _ in grouped.values() for label in labels})
    return DetectionDataset(
        records, ClassMap(ids=list(names), names=list(names)), path, "csv", split, problems, notes
    )


def _rows(path: Path) -> tuple[list[list[str]], dict[str, int], int]:
    """The data rows, the column of each field, and the line number of the first data row."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read `{path}` as UTF-8 text ({exc}): {EXPECTED}") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise UsageError(f"`{path}` is empty: {EXPECTED}")
    header = [cell.strip().lower() for cell in rows[0]]
    if "xmin" in header:
        return rows[1:], _columns(header, path), 2
    if len(rows[0]) >= 6 and _number(rows[0][1]) is not None:
        return rows, {name: k for k, name in enumerate(COLUMNS)}, 1
    raise UsageError(
        f"`{path}` has no header with `xmin` and its first row ({','.join(rows[0])[:80]}) is not a box: {EXPECTED}"
    )


def _columns(header: list[str], path: Path) -> dict[str, int]:
    columns = {}
    for name in COLUMNS:
        for alias in ALIASES.get(name, (name,)):
            if alias in header:
                columns[name] = header.index(alias)
                break
        else:
            raise UsageError(
                f"`{path}` has no `{name}` column (its header: {','.join(header)[:120]}): {EXPECTED}"
            )
    return columns


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _box(row: list[str], columns: dict[str, int]) -> tuple[list[float], str] | None:
    if len(row) <= max(columns.values()):
        return None
    cells = [row[columns[c]].strip() for c in COLUMNS[1:5]]
    if not any(cells):
        return [0.0, 0.0, 0.0, 0.0], row[columns["label"]].strip()
    values = [_number(c) for c in cells]
    if any(v is None for v in values):
        return None
    return values, row[columns["label"]].strip()


def _malformed(annotation_id: str, row: list[str], image: str | None, why: str = "") -> Problem:
    why = why or "it needs an image path and four numbers"
    return Problem(
        "HF316",
        f"`{annotation_id}` does not parse: {why} (`{','.join(row)[:60]}`)",
        "write each box as image_path,xmin,ymin,xmax,ymax,label in pixels; `--fix OUT` drops the row",
        image,
        annotation_id,
    )
