"""``lint(dataset)``: every problem in a detection dataset, by its own ids, with the numbers.

Boxes of all images are checked as one array (100,000 boxes in milliseconds); a problem object is
built only for what is wrong. Each annotation gets one box problem, the most specific: a dataset
whose COCO boxes are x1,y1,x2,y2 (HF304) is one problem, not half its boxes "outside the image".
Notes are what training handles on its own (negatives, crowd boxes, grayscale images, gapped ids);
stats size the model's post-processing (boxes per image) and the evaluation (COCO's areas).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headfit.datasets.geometry import as_written, clip_boxes, exif_boxes, fits, xyxy_text
from headfit.datasets.headers import MISSING, SWAPS_SIDES, TRUNCATED, is_image_file, mode_words
from headfit.datasets.problems import Id, Problem
from headfit.datasets.records import DetectionDataset, ImageRecord
from headfit.datasets.report import ClassStats, DataReport, DataStats

TOLERANCE = 1e-3  # pixels a box may pass the image edge by (float rounding) before it is a problem
XYXY_SHARE = 0.95  # share of COCO boxes that must read as valid x1,y1,x2,y2 for HF304
MAX_DETECTIONS = 100  # torchvision's detections_per_img and COCO's maxDets default
SMALL, MEDIUM = 32**2, 96**2  # COCO's area ranges
TORCHVISION_DECODES = {"JPEG", "PNG", "WEBP", "GIF", "MPO"}
SHOWN = 3  # ids a note names before "and N more"


@dataclass
class BoxTable:
    """All boxes of a dataset as arrays, with the image each belongs to and that image's frame."""

    boxes: np.ndarray  # [M, 4] float64, x1 y1 x2 y2
    image: np.ndarray  # [M] index into dataset.images
    offset: np.ndarray  # [images] index of each image's first box
    width: np.ndarray  # [images] the frame boxes are checked against (the file, else the declared size)
    height: np.ndarray  # NaN when neither is known
    labels: np.ndarray  # [M] contiguous class index, -1 for an id the class map does not know
    crowd: np.ndarray  # [M] bool

    @classmethod
    def of(cls, dataset: DetectionDataset) -> BoxTable:
        records = dataset.images
        counts = np.fromiter((r.num_boxes for r in records), dtype=np.int64, count=len(records))
        offset = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(records) else np.zeros(0, np.int64)
        boxes = [r.boxes for r in records if r.num_boxes]
        ids = [r.category_ids for r in records if r.num_boxes]
        crowd = [r.crowd for r in records if r.num_boxes]
        index = dataset.classes._index
        labels = [index.get(c, -1) for c in np.concatenate(ids).tolist()] if ids else []
        frames = [frame(r) for r in records]
        return cls(
            boxes=np.concatenate(boxes).astype(np.float64) if boxes else np.zeros((0, 4)),
            image=np.repeat(np.arange(len(records)), counts),
            offset=offset.astype(np.int64),
            width=np.array([f[0] for f in frames], dtype=np.float64),
            height=np.array([f[1] for f in frames], dtype=np.float64),
            labels=np.asarray(labels, dtype=np.int64),
            crowd=np.concatenate(crowd) if crowd else np.zeros(0, bool),
        )

    def annotation_id(self, dataset: DetectionDataset, m: int) -> Id:
        i = int(self.image[m])
        return dataset.images[i].annotation_ids[m - int(self.offset[i])]


def frame(record: ImageRecord) -> tuple[float, float]:
    if record.width is not None and record.height is not None:
        return float(record.width), float(record.height)
    if record.declared_size is not None:
        return float(record.declared_size[0]), float(record.declared_size[1])
    return float("nan"), float("nan")


def lint(dataset: DetectionDataset) -> DataReport:
    """Everything wrong with ``dataset`` (problems), what training handles (notes), and its stats."""
    table = BoxTable.of(dataset)
    problems = list(dataset.problems)
    problems += image_file_problems(dataset)
    sized = declared_size_problems(dataset)
    problems += sized
    problems += duplicate_file_problems(dataset)
    problems += duplicate_annotation_problems(dataset)
    problems += unknown_category_problems(dataset, table, problems)
    problems += box_problems(dataset, table, problems, {p.image_id for p in sized})
    problems += other_annotation_problems(dataset)
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
            code, summary = "HF308", f"image {_q(record.image_id)}: the file `{record.file}` does not exist"
            fix = f"restore the file, or remove the image from the annotations; {drop}"
        elif header.status == TRUNCATED:
            code, summary = (
                "HF310",
                f"image {_q(record.image_id)}: `{record.file.name}` is truncated ({header.detail})",
            )
            fix = f"copy the file again from its source (a download or copy was cut short); {drop}"
        else:
            code, summary = (
                "HF309",
                f"image {_q(record.image_id)}: `{record.file.name}` cannot be read as an image ({header.detail})",
            )
            fix = f"replace it with the real image file; {drop}"
        problems.append(Problem(code, summary, fix, record.image_id, None, str(record.file)))
    return problems


@dataclass
class SizeRepair:
    """How ``--fix`` resolves a declared size that disagrees with the file (HF311)."""

    kind: str  # "exif": boxes drawn on the stored pixels, rotated; "scale": image resized; "size": metadata only
    boxes: np.ndarray  # the record's boxes in the file's frame
    words: str  # what the fix does, for the problem's help and the change list


def size_repair(record: ImageRecord) -> SizeRepair | None:
    """None when the declared size agrees with the file (or either is unknown)."""
    declared, real, header = record.declared_size, (record.width, record.height), record.header
    if declared is None or real[0] is None or header is None or declared == real:
        return None
    width, height = real
    if header.orientation in SWAPS_SIDES and declared == header.stored_size:
        rotated = exif_boxes(record.boxes, header.orientation, declared)
        return SizeRepair(
            "exif", rotated, "rotates its boxes with the EXIF orientation and sets the decoded size"
        )
    sx, sy = width / declared[0], height / declared[1]
    if record.num_boxes and abs(sx - sy) <= 0.01 * max(sx, sy):
        fit_declared = fits(record.boxes, *declared).all()
        if fit_declared and not fits(record.boxes, width, height).all():
            scaled = record.boxes * np.array([sx, sy, sx, sy], dtype=record.boxes.dtype)
            return SizeRepair(
                "scale", scaled, f"scales its boxes by {sx:.3g} (the image was resized after annotation)"
            )
    return SizeRepair("size", record.boxes, "writes the file's size (boxes outside it are then clipped)")


def declared_size_problems(dataset: DetectionDataset) -> list[Problem]:
    problems = []
    for record in dataset.images:
        repair = size_repair(record)
        if repair is None:
            continue
        (dw, dh), (w, h) = record.declared_size, (record.width, record.height)
        if repair.kind == "exif":
            summary = (
                f"image {_q(record.image_id)} declares {dw}x{dh}, its size as stored; its EXIF orientation "
                f"{record.header.orientation} turns it to {w}x{h} when decoded"
            )
        else:
            summary = f"image {_q(record.image_id)} declares {dw}x{dh}, but `{record.file.name}` is {w}x{h}"
        outside = int((~fits(record.boxes, w, h)).sum())
        facts = (
            [f"{outside} of its {record.num_boxes} boxes leave the file's {w}x{h} frame"] if outside else []
        )
        fix = f"set width {w}, height {h}; `--fix OUT` {repair.words}"
        problems.append(Problem("HF311", summary, fix, record.image_id, None, str(record.file), facts))
    return problems


def duplicate_file_problems(dataset: DetectionDataset) -> list[Problem]:
    first: dict[str, ImageRecord] = {}
    problems = []
    for record in dataset.images:
        key = os.path.normcase(os.path.abspath(record.file))
        earlier = first.setdefault(key, record)
        if earlier is record:
            continue
        problems.append(
            Problem(
                "HF313",
                f"images {_q(earlier.image_id)} and {_q(record.image_id)} are the same file `{record.file.name}`",
                f"keep one image entry for the file; `--fix OUT` moves the {record.num_boxes} boxes of "
                f"{_q(record.image_id)} to {_q(earlier.image_id)} (exact duplicates dropped)",
                record.image_id,
                None,
                str(record.file),
            )
        )
    return problems


def duplicate_annotation_problems(dataset: DetectionDataset) -> list[Problem]:
    if dataset.format != "coco":
        return []  # the other readers make their ids from file names and lines: unique by construction
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
                    f"annotation id {aid} is used twice (in images {_q(owner[aid])} and {_q(record.image_id)})",
                    "give each annotation its own id; `--fix OUT` renumbers the later one",
                    record.image_id,
                    aid,
                    str(record.file),
                )
            )
    return problems


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
            facts.append(f"read as x1,y1,x2,y2 the bbox would be {xyxy_text(corners)}, inside the image")
    return Problem(
        "HF303",
        f"annotation {aid} leaves the {size} image by {by} ({written})",
        f"clip it to the image, x1,y1,x2,y2 = {xyxy_text(clipped)}; `--fix OUT` clips it",
        record.image_id,
        aid,
        str(record.file),
        facts,
    )


def other_annotation_problems(dataset: DetectionDataset) -> list[Problem]:
    """An image whose Pascal VOC XML beside it (or in ``../Annotations``) has more boxes than this
    dataset gives it: the dataset labels part of the objects, and the rest train as background."""
    if dataset.format == "voc":
        return []
    problems = []
    for record in dataset.images:
        other = _sidecar(record.file)
        if other is None or other.resolve() == Path(dataset.source).resolve():
            continue
        boxes = _xml_boxes(other)
        if boxes is None or len(boxes) <= record.num_boxes:
            continue
        shared = _shared_boxes(record.boxes, boxes)
        problems.append(
            Problem(
                "HF317",
                f"image {_q(record.image_id)} has {record.num_boxes} boxes here, but `{other.name}` beside it has "
                f"{len(boxes)} ({shared} of these {record.num_boxes} among them): the rest would train as background",
                f"train on the complete annotation (`headfit data check {other}`), or annotate the missing "
                f"{len(boxes) - shared} objects; `--fix OUT` leaves the image out",
                record.image_id,
                None,
                str(record.file),
            )
        )
    return problems


def _sidecar(file: Path) -> Path | None:
    for candidate in (file.with_suffix(".xml"), file.parent.parent / "Annotations" / f"{file.stem}.xml"):
        if os.path.exists(candidate):
            return candidate
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


def _q(image_id: Id | None) -> str:
    """An id as a message shows it: numbers bare, names in backticks."""
    return f"`{image_id}`" if isinstance(image_id, str) else str(image_id)


# -- notes ---------------------------------------------------------------------------------------------


def dataset_notes(dataset: DetectionDataset, table: BoxTable) -> list[str]:
    notes = []
    notes += _class_notes(dataset, table)
    negatives = [
        r.image_id for r in dataset.images if r.num_boxes == 0 and (r.header is None or r.header.usable)
    ]
    if negatives:
        notes.append(
            f"{_count(negatives, 'image')} without boxes ({_some(negatives)}): training uses them as background only"
        )
    crowd = int(table.crowd.sum())
    if crowd:
        notes.append(
            f"{crowd:,} crowd boxes (`iscrowd` 1): COCO's mAP ignores detections on them, and training leaves them out of the targets"
        )
    notes += _image_notes(dataset)
    notes += _box_count_notes(dataset)
    notes += _twin_notes(dataset)
    return notes


def _class_notes(dataset: DetectionDataset, table: BoxTable) -> list[str]:
    notes = []
    ids = dataset.classes.ids
    integers = all(isinstance(i, int) for i in ids)
    if integers and ids and ids != list(range(ids[0], ids[0] + len(ids))):
        mapping = ", ".join(f"{i} -> {k}" for k, i in enumerate(ids[:12])) + (
            ", ..." if len(ids) > 12 else ""
        )
        notes.append(
            f"category ids have gaps ({_ids(ids)}): training maps them to contiguous indices ({mapping}) and keeps the mapping with the checkpoint"
        )
    if integers and 0 in ids and dataset.format == "coco":
        name = dataset.classes.names[ids.index(0)]
        notes.append(
            f"category id 0 (`{name}`) is an object class here, while torchvision's R-CNN and SSD detectors reserve label 0 "
            "for background: training maps ids to class indices and adds the background offset itself"
        )
    counts = (
        np.bincount(table.labels[table.labels >= 0], minlength=len(ids))
        if len(table.labels)
        else np.zeros(len(ids), int)
    )
    unused = [_class_label(dataset, int(k)) for k in np.flatnonzero(counts == 0)]
    if unused:
        notes.append(
            f"{len(unused)} class{'es' if len(unused) > 1 else ''} without any box here ({', '.join(unused[:6])}"
            f"{', ...' if len(unused) > 6 else ''}): a model cannot learn {'them' if len(unused) > 1 else 'it'} from this data"
        )
    return notes


def _class_label(dataset: DetectionDataset, k: int) -> str:
    cid, name = dataset.classes.ids[k], dataset.classes.names[k]
    return f"`{name}`" if cid == name else f"`{name}` (id {cid})"


def _image_notes(dataset: DetectionDataset) -> list[str]:
    notes = []
    modes = Counter(
        mode_words(r.header.mode) for r in dataset.images if r.header is not None and r.header.usable
    )
    modes.pop(None, None)
    if modes:
        kinds = ", ".join(f"{n:,} {word}" for word, n in modes.most_common())
        notes.append(f"images that are not 8-bit RGB ({kinds}): decode_image converts them to 8-bit RGB")
    formats = Counter(r.header.format for r in dataset.images if r.header is not None and r.header.usable)
    others = {f: n for f, n in formats.items() if f not in TORCHVISION_DECODES}
    if others:
        kinds = ", ".join(f"{n:,} {f}" for f, n in others.items())
        notes.append(f"images torchvision.io cannot decode ({kinds}): decode_image reads them with PIL")
    rotated = [
        r
        for r in dataset.images
        if r.header is not None and r.header.orientation != 1 and size_repair(r) is None
    ]
    if rotated:
        notes.append(
            f"{_count([r.image_id for r in rotated], 'image')} carry an EXIF orientation ({_some([r.image_id for r in rotated])}): "
            "sizes here are as decoded, with the rotation applied, and the declared sizes agree"
        )
    return notes


def _box_count_notes(dataset: DetectionDataset) -> list[str]:
    if not dataset.images:
        return []
    busiest = max(dataset.images, key=lambda r: r.num_boxes)
    if busiest.num_boxes <= MAX_DETECTIONS:
        return []
    crowded = sum(r.num_boxes > MAX_DETECTIONS for r in dataset.images)
    return [
        f"{_count([0] * crowded, 'image')} {'have' if crowded > 1 else 'has'} more than {MAX_DETECTIONS} boxes (image {_q(busiest.image_id)} has "
        f"{busiest.num_boxes}): torchvision detectors keep {MAX_DETECTIONS} detections per image "
        f"(`box_detections_per_img` / `detections_per_img`) and COCO's mAP counts {MAX_DETECTIONS} (`maxDets`); "
        f"raise both to at least {busiest.num_boxes}"
    ]


def _twin_notes(dataset: DetectionDataset) -> list[str]:
    """Images with a same-stem twin beside them that the annotations do not name (a .tif and its .png)."""
    named = {os.path.normcase(os.path.abspath(r.file)) for r in dataset.images}
    listings: dict[Path, dict[str, list[str]]] = {}
    twins = []
    for record in dataset.images:
        folder = record.file.parent
        if folder not in listings:
            listings[folder] = _stems(folder)
        for other in listings[folder].get(record.file.stem.lower(), []):
            path = folder / other
            if other != record.file.name and os.path.normcase(os.path.abspath(path)) not in named:
                twins.append(f"`{record.file.name}` / `{other}`")
    if not twins:
        return []
    return [
        f"{len(twins)} annotated image{'s have' if len(twins) > 1 else ' has'} a twin with the same stem beside "
        f"{'them' if len(twins) > 1 else 'it'} that the annotations do not name ({', '.join(twins[:SHOWN])}"
        f"{', ...' if len(twins) > SHOWN else ''}): only the named file is trained on, and a folder of both predicts the picture twice"
    ]


def _stems(folder: Path) -> dict[str, list[str]]:
    stems: dict[str, list[str]] = {}
    try:
        names = os.listdir(folder)
    except OSError:
        return stems
    for name in names:
        if is_image_file(name):
            stems.setdefault(os.path.splitext(name)[0].lower(), []).append(name)
    return stems


def _count(items: list, noun: str) -> str:
    return f"{len(items):,} {noun}{'s' if len(items) != 1 else ''}"


def _some(ids: list[Id]) -> str:
    shown = ", ".join(_q(i) for i in ids[:SHOWN])
    return shown + (f" and {len(ids) - SHOWN:,} more" if len(ids) > SHOWN else "")


def _ids(ids: list[Id]) -> str:
    return ", ".join(map(str, ids[:12])) + (", ..." if len(ids) > 12 else "")


# -- stats ---------------------------------------------------------------------------------------------


def dataset_stats(dataset: DetectionDataset, table: BoxTable) -> DataStats:
    records = dataset.images
    counts = np.fromiter((r.num_boxes for r in records), dtype=np.int64, count=len(records))
    per_class = _per_class(dataset, table)
    b = table.boxes
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    sizes = Counter((r.width, r.height) for r in records if r.width is not None and r.height is not None)
    known = list(sizes)
    return DataStats(
        images=len(records),
        annotations=int(counts.sum()),
        classes=len(dataset.classes),
        per_class=per_class,
        boxes_per_image_max=int(counts.max()) if len(counts) else 0,
        boxes_per_image_p99=int(np.ceil(np.percentile(counts, 99))) if len(counts) else 0,
        boxes_per_image_mean=float(counts.mean()) if len(counts) else 0.0,
        negatives=int((counts == 0).sum()),
        crowd=int(table.crowd.sum()),
        small=int((area < SMALL).sum()),
        medium=int(((area >= SMALL) & (area < MEDIUM)).sum()),
        large=int((area >= MEDIUM).sum()),
        image_sizes=[(w, h, n) for (w, h), n in sizes.most_common(5)],
        smallest=min(known, key=lambda s: s[0] * s[1]) if known else None,
        largest=max(known, key=lambda s: s[0] * s[1]) if known else None,
        unreadable=sum(r.width is None for r in records),
        format=dataset.format,
        source=str(dataset.source),
        split=dataset.split,
    )


def _per_class(dataset: DetectionDataset, table: BoxTable) -> list[ClassStats]:
    k = len(dataset.classes)
    valid = table.labels >= 0
    boxes = np.bincount(table.labels[valid], minlength=k) if valid.any() else np.zeros(k, np.int64)
    pairs = (
        np.unique(np.stack([table.image[valid], table.labels[valid]], axis=1), axis=0)
        if valid.any()
        else np.zeros((0, 2), np.int64)
    )
    images = np.bincount(pairs[:, 1], minlength=k) if len(pairs) else np.zeros(k, np.int64)
    return [
        ClassStats(cid, name, i, int(boxes[i]), int(images[i]))
        for i, (cid, name) in enumerate(zip(dataset.classes.ids, dataset.classes.names, strict=True))
    ]
