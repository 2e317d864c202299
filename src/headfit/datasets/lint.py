"""``lint(dataset)``: every problem in a detection dataset, by its own ids, with the numbers.

Boxes of all images are checked as one array (100,000 boxes in milliseconds); a problem object is
built only for what is wrong. Each annotation gets one box problem, the most specific: a dataset
whose COCO boxes are x1,y1,x2,y2 (HF304) is one problem, not half its boxes "outside the image".
The notes (``notes.py``) and the stats (``stats.py``) come with the report.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from headfit.datasets.geometry import as_written, clip_boxes, fits, size_repair, xyxy_text
from headfit.datasets.headers import MISSING, TRUNCATED
from headfit.datasets.notes import dataset_notes
from headfit.datasets.problems import Id, Problem
from headfit.datasets.records import DetectionDataset, ImageRecord
from headfit.datasets.report import DataReport
from headfit.datasets.resolve import Listings, gc_paused
from headfit.datasets.stats import dataset_stats
from headfit.datasets.table import BoxTable, quoted, repeated

TOLERANCE = 1e-3  # pixels a box may pass the image edge by (float rounding) before it is a problem
XYXY_SHARE = 0.95  # share of COCO boxes that must read as valid x1,y1,x2,y2 for HF304
# what a missing image's fix adds: where the format's names are read from, and the flag that moves it
ELSEWHERE = {
    "coco": " (or, when the images are elsewhere, pass `--images DIR`, the folder `file_name` is relative to)",
    "csv": " (or, when the images are elsewhere, pass `--images DIR`: `image_path` is read relative to the CSV's folder)",
    "voc": " (or, when the images are elsewhere, pass `--images DIR`: `<filename>` is looked for in `JPEGImages/`)",
}


def lint(dataset: DetectionDataset) -> DataReport:
    """Everything wrong with ``dataset`` (problems), what training handles (notes), and its stats."""
    with gc_paused():
        return _lint(dataset)


def _lint(dataset: DetectionDataset) -> DataReport:
    table = BoxTable.of(dataset)
    problems = list(dataset.problems)
    problems += image_file_problems(dataset)
    sized = declared_size_problems(dataset)
    problems += sized
    problems += duplicate_file_problems(dataset, table)
    problems += duplicate_annotation_problems(dataset)
    problems += unknown_category_problems(dataset, table, problems)
    problems += box_problems(dataset, table, problems, {p.image_id for p in sized})
    problems += other_annotation_problems(dataset, table)
    notes = list(dataset.notes) + dataset_notes(dataset, table)
    return DataReport(
        dataset.source, dataset.format, dataset.split, problems, notes, dataset_stats(dataset, table)
    )


# -- image files ---------------------------------------------------------------------------------------


def image_file_problems(dataset: DetectionDataset) -> list[Problem]:
    problems = []
    for record in dataset.images:
        header = record.header
        if header is None or header.usable:
            continue
        boxes = (
            f" and its {record.num_boxes} box{'es' if record.num_boxes != 1 else ''}"
            if record.num_boxes
            else ""
        )
        drop = f"`--fix OUT` leaves the image{boxes} out"
        if header.status == MISSING:
            code, summary = (
                "HF308",
                f"image {quoted(record.image_id)}: the file `{record.file}` does not exist",
            )
            fix = f"restore the file{ELSEWHERE.get(dataset.format, '')}, or remove the image from the annotations; {drop}"
        elif header.status == TRUNCATED:
            code, summary = (
                "HF310",
                f"image {quoted(record.image_id)}: `{record.file.name}` is truncated ({header.detail})",
            )
            fix = f"copy the file again from its source (a download or copy was cut short); {drop}"
        else:
            code, summary = (
                "HF309",
                f"image {quoted(record.image_id)}: `{record.file.name}` cannot be read as an image ({header.detail})",
            )
            fix = f"replace it with the real image file; {drop}"
        problems.append(Problem(code, summary, fix, record.image_id, None, str(record.file)))
    return problems


def declared_size_problems(dataset: DetectionDataset) -> list[Problem]:
    problems = []
    for record in dataset.images:
        repair = size_repair(record)
        if repair is None:
            continue
        (dw, dh), (w, h) = record.declared_size, (record.width, record.height)
        if repair.kind == "exif":
            summary = (
                f"image {quoted(record.image_id)} declares {dw}x{dh}, its size as stored; its EXIF orientation "
                f"{record.header.orientation} turns it to {w}x{h} when decoded"
            )
        else:
            summary = (
                f"image {quoted(record.image_id)} declares {dw}x{dh}, but `{record.file.name}` is {w}x{h}"
            )
        outside = int((~fits(record.boxes, w, h)).sum())
        facts = (
            [f"{outside} of its {record.num_boxes} boxes leave the file's {w}x{h} frame"] if outside else []
        )
        fix = f"set width {w}, height {h}; `--fix OUT` {repair.words}"
        problems.append(Problem("HF311", summary, fix, record.image_id, None, str(record.file), facts))
    return problems


def duplicate_file_problems(dataset: DetectionDataset, table: BoxTable) -> list[Problem]:
    first: dict[tuple[str, str], ImageRecord] = {}
    problems = []
    for record, folder, name in zip(dataset.images, table.folders, table.names, strict=True):
        earlier = first.setdefault((folder, os.path.normcase(name)), record)
        if earlier is record:
            continue
        problems.append(
            Problem(
                "HF313",
                f"images {quoted(earlier.image_id)} and {quoted(record.image_id)} are the same file `{record.file.name}`",
                f"keep one image entry for the file; `--fix OUT` moves the {record.num_boxes} boxes of "
                f"{quoted(record.image_id)} to {quoted(earlier.image_id)} (exact duplicates dropped)",
                record.image_id,
                None,
                str(record.file),
            )
        )
    return problems


def duplicate_annotation_problems(dataset: DetectionDataset) -> list[Problem]:
    if dataset.format != "coco":
        return []  # the other readers make their ids from file names and lines: unique by construction
    if _all_distinct(dataset):
        return []
    owner: dict[Id, Id] = {}
    problems = []
    for record in dataset.images:
        for aid in record.annotation_ids:
            if aid not in owner:
                owner[aid] = record.image_id
                continue
            problems.append(
                Problem(
                    "HF315",
                    f"annotation id {aid} is used twice (in images {quoted(owner[aid])} and {quoted(record.image_id)})",
                    "give each annotation its own id; `--fix OUT` renumbers the later one",
                    record.image_id,
                    aid,
                    str(record.file),
                )
            )
    return problems


def _all_distinct(dataset: DetectionDataset) -> bool:
    """Whether no annotation id repeats (one sort when the ids are integers, as COCO's are)."""
    ids = [aid for record in dataset.images for aid in record.annotation_ids]
    if set(map(type, ids)) <= {int}:
        return not len(repeated(np.asarray(ids, dtype=np.int64)))
    return len(set(ids)) == len(ids)


# -- annotations ---------------------------------------------------------------------------------------


def _already_named(problems: list[Problem]) -> set[tuple[Id | None, Id | None]]:
    """(image id, annotation id) of annotations a reader already reported: one problem each."""
    return {(p.image_id, p.annotation_id) for p in problems if p.annotation_id is not None}


def unknown_category_problems(
    dataset: DetectionDataset, table: BoxTable, found: list[Problem]
) -> list[Problem]:
    named = _already_named(found)
    known = ", ".join(map(str, dataset.classes.ids[:12])) + (", ..." if len(dataset.classes) > 12 else "")
    problems = []
    for m in np.flatnonzero(table.labels < 0):
        record = dataset.images[int(table.image[m])]
        k = int(m - table.offset[int(table.image[m])])
        aid = record.annotation_ids[k]
        if (record.image_id, aid) in named:
            continue
        cid = record.category_ids[k]
        problems.append(
            Problem(
                "HF306",
                f"annotation {aid} has category id {cid}, which `categories` does not list (it lists {known})",
                f"add category {cid} to `categories`, or correct the annotation's `category_id`; `--fix OUT` drops it",
                record.image_id,
                aid,
                str(record.file),
            )
        )
    return problems


def looks_xyxy(dataset: DetectionDataset, table: BoxTable) -> tuple[int, int] | None:
    """(boxes that leave the image as x,y,w,h, boxes in all) when a COCO file's ``bbox`` values read as
    x1,y1,x2,y2: every box that overflows as x,y,w,h fits as corners, and (nearly) all boxes have
    "w" > x and "h" > y, which true widths only show near the top-left corner."""
    if dataset.format != "coco" or not len(table.boxes):
        return None
    b = table.boxes
    x, y, w, h = b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    width, height = table.width[table.image], table.height[table.image]
    known = np.isfinite(width) & (w > 0) & (h > 0)
    as_corners = (
        known & (w > x) & (h > y) & (w <= width + TOLERANCE) & (h <= height + TOLERANCE) & (x >= 0) & (y >= 0)
    )
    overflow = known & ((x + w > width + TOLERANCE) | (y + h > height + TOLERANCE))
    if not overflow.any() or not as_corners[overflow].all() or as_corners[known].mean() < XYXY_SHARE:
        return None
    return int(overflow.sum()), int(known.sum())


def box_problems(
    dataset: DetectionDataset, table: BoxTable, found: list[Problem], resized: set[Id | None]
) -> list[Problem]:
    """Zero-size, negative and out-of-image boxes (or one HF304 for a file of x1,y1,x2,y2 boxes)."""
    if not len(table.boxes):
        return []
    corners = looks_xyxy(dataset, table)
    if corners is not None:
        return [_xyxy_problem(dataset, *corners)]
    named = _already_named(found)
    b = table.boxes
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    width, height = table.width[table.image], table.height[table.image]
    zero = (w == 0) | (h == 0)
    negative = ~zero & ((w < 0) | (h < 0))
    lo, hi = np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])
    outside = (
        np.isfinite(width)
        & ~zero
        & (
            (lo[:, 0] < -TOLERANCE)
            | (lo[:, 1] < -TOLERANCE)
            | (hi[:, 0] > width + TOLERANCE)
            | (hi[:, 1] > height + TOLERANCE)
        )
    )
    problems = []
    for m in np.flatnonzero(zero | negative | outside):
        record = dataset.images[int(table.image[m])]
        aid = table.annotation_id(dataset, int(m))
        if (record.image_id, aid) in named:
            continue
        if zero[m]:
            problems.append(_zero_size(dataset, record, aid, b[m], w[m], h[m]))
        elif negative[m]:
            problems.append(_negative(dataset, record, aid, b[m], w[m], h[m]))
        elif record.image_id not in resized:  # HF311 already says the frame is wrong
            problems.append(_outside(dataset, record, aid, b[m], width[m], height[m]))
    return problems


def _xyxy_problem(dataset: DetectionDataset, overflowing: int, total: int) -> Problem:
    return Problem(
        "HF304",
        f"the `bbox` values look like x1,y1,x2,y2, not COCO's x,y,width,height: read as x,y,w,h, "
        f"{overflowing:,} of {total:,} boxes leave their image; read as corners, all of them fit",
        "write `bbox` as [x1, y1, x2 - x1, y2 - y1]; `--fix OUT` converts every box",
        facts=[
            f"every box has its third value above its first and its fourth above its second ({total:,} boxes)"
        ],
    )


def _zero_size(dataset, record, aid, box, w, h) -> Problem:
    side = "width and height" if w == 0 and h == 0 else "width" if w == 0 else "height"
    return Problem(
        "HF301",
        f"annotation {aid} has zero {side} ({as_written(box, dataset.format)})",
        "give the box its real extent, or delete the annotation; `--fix OUT` drops it",
        record.image_id,
        aid,
        str(record.file),
    )


def _negative(dataset, record, aid, box, w, h) -> Problem:
    sides = " and ".join(s for s, v in (("width", w), ("height", h)) if v < 0)
    ordered = [min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])]
    return Problem(
        "HF302",
        f"annotation {aid} has a negative {sides} ({as_written(box, dataset.format)}: "
        f"{'w' if w < 0 else 'h'} = {min(w, h) if w < 0 and h < 0 else (w if w < 0 else h):g})",
        f"write the corners in order, x1,y1,x2,y2 = {xyxy_text(ordered)}; `--fix OUT` reorders them",
        record.image_id,
        aid,
        str(record.file),
    )


def _outside(dataset, record, aid, box, width, height) -> Problem:
    x1, y1, x2, y2 = min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])
    size = f"{width:.0f}x{height:.0f}"
    written = as_written(box, dataset.format)
    if x1 >= width or y1 >= height or x2 <= 0 or y2 <= 0:
        return Problem(
            "HF303",
            f"annotation {aid} lies entirely outside the {size} image ({written})",
            "correct the box, or delete the annotation; `--fix OUT` drops it",
            record.image_id,
            aid,
            str(record.file),
        )
    over = [
        (-x1, "on the left"),
        (-y1, "at the top"),
        (x2 - width, "on the right"),
        (y2 - height, "at the bottom"),
    ]
    by = " and ".join(f"{amount:.3g} px {side}" for amount, side in over if amount > TOLERANCE)
    clipped = clip_boxes(np.array([[x1, y1, x2, y2]]), width, height)[0]
    kept = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) / max((x2 - x1) * (y2 - y1), 1e-9)
    facts = [f"clipped to the image it keeps {kept:.0%} of its area: {xyxy_text(clipped)}"]
    if dataset.format == "coco" and box[2] - box[0] > box[0] and box[3] - box[1] > box[1]:
        corners = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
        if corners[2] <= width and corners[3] <= height:
            facts.append(
                f"read as corners x1,y1,x2,y2 = {xyxy_text(corners)}, the bbox would lie inside the image"
            )
    return Problem(
        "HF303",
        f"annotation {aid} leaves the {size} image by {by} ({written})",
        f"clip it to the image, x1,y1,x2,y2 = {xyxy_text(clipped)}; `--fix OUT` clips it",
        record.image_id,
        aid,
        str(record.file),
        facts,
    )


def other_annotation_problems(dataset: DetectionDataset, table: BoxTable | None = None) -> list[Problem]:
    """An image whose Pascal VOC XML beside it (or in ``../Annotations``) has more boxes than this
    dataset gives it: the dataset labels part of the objects, and the rest train as background."""
    if dataset.format == "voc":
        return []
    table = table or BoxTable.of(dataset)
    listings = Listings()
    source = os.path.normcase(os.path.abspath(dataset.source))
    xmls_in: dict[str, list[str]] = {}
    problems = []
    for record, folder, name in zip(dataset.images, table.folders, table.names, strict=True):
        if folder not in xmls_in:
            annotations = os.path.join(os.path.dirname(folder), "Annotations")
            xmls_in[folder] = [
                f for f in (folder, annotations) if any(n.endswith(".xml") for n in listings.names(f))
            ]
        if not xmls_in[folder]:
            continue
        other = _sidecar(name, xmls_in[folder], listings)
        if other is None or os.path.normcase(other) == source:
            continue
        boxes = _xml_boxes(Path(other))
        if boxes is None or len(boxes) <= record.num_boxes:
            continue
        shared = _shared_boxes(record.boxes, boxes)
        problems.append(
            Problem(
                "HF317",
                f"image {quoted(record.image_id)} has {record.num_boxes} boxes here, but `{os.path.basename(other)}` beside it "
                f"has {len(boxes)} ({shared} of these {record.num_boxes} among them): the rest would train as background",
                f"train on the complete annotation (`headfit data check {_shown(other)}`), or annotate the missing "
                f"{len(boxes) - shared} objects; `--fix OUT` leaves the image out",
                record.image_id,
                None,
                str(record.file),
            )
        )
    return problems


def _shown(path: str) -> str:
    """A path as a command the user can paste: relative to the working folder when inside it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _sidecar(name: str, folders: list[str], listings: Listings) -> str | None:
    xml = os.path.splitext(name)[0] + ".xml"
    for folder in folders:
        if xml in listings.names(folder):
            return os.path.join(folder, xml)
    return None


def _xml_boxes(path: Path) -> np.ndarray | None:
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return None
    boxes = []
    for box in root.iter("bndbox"):
        try:
            boxes.append([float(box.findtext(k, "")) for k in ("xmin", "ymin", "xmax", "ymax")])
        except ValueError:
            continue
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _shared_boxes(ours: np.ndarray, theirs: np.ndarray) -> int:
    """How many of our boxes are in the other file (within 1.5 px: VOC counts pixels from 1)."""
    if not len(ours) or not len(theirs):
        return 0
    close = np.abs(ours[:, None, :].astype(np.float64) - theirs[None, :, :]).max(axis=2) <= 1.5
    return int(close.any(axis=1).sum())
