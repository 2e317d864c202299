"""COCO instances JSON: ``images``, ``annotations`` (``bbox`` is x, y, width, height) and ``categories``.

Images are looked for under ``--images DIR`` when given, else beside the JSON, in ``images/`` beside
it, and in COCO's own layout (``annotations/instances_val2017.json`` next to ``val2017/``). The file
is refused before it is parsed when it is larger than ``MAX_JSON_BYTES`` or than the memory Python's
``json`` would need for it (about 8 bytes of objects per byte of text), so a 2 GB file answers in
one paragraph instead of swapping the machine to a halt.
"""

from __future__ import annotations

import json
import math
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from headfit.datasets.problems import Problem
from headfit.datasets.records import ClassMap, DetectionDataset, ImageRecord
from headfit.datasets.resolve import ImageFinder, attach_headers, require_image_folder
from headfit.errors import UsageError

MAX_JSON_BYTES = 1_000_000_000  # COCO's own train2017 instances file is 448 MB
JSON_MEMORY_FACTOR = 8  # bytes of Python objects per byte of COCO JSON text (measured: 6-8)
EXPECTED = (
    "a COCO instances file is one object with `images` ([{id, file_name, width, height}]), "
    "`annotations` ([{id, image_id, category_id, bbox: [x, y, w, h]}]) and `categories` ([{id, name}])"
)


def read_coco(path: Path, images: Path | None = None, split: str | None = None) -> DetectionDataset:
    document = load_json(path)
    problems: list[Problem] = []
    notes: list[str] = []
    classes = _class_map(document, path, problems)
    finder = ImageFinder(image_folders(path, images))
    records = _image_records(document["images"], finder, problems, notes)
    notes += finder.notes()
    attach_headers(records, path, _where_hint(path, images))
    _attach_annotations(document.get("annotations") or [], records, problems)
    return DetectionDataset(records, classes, path, "coco", split, problems=problems, notes=notes)


# -- the file ------------------------------------------------------------------------------------------


def load_json(path: Path) -> dict[str, Any]:
    """The parsed COCO document; anything else is one paragraph naming what was expected."""
    size = _size_of(path)
    _refuse_too_large(path, size)
    with open(path, "rb") as file:
        start = file.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if start[:1] == b"[":
        raise UsageError(
            f"`{path}` is a JSON list, not a COCO instances file (a list of detections with `score` is a "
            f"COCO results file, which `headfit evaluate` writes): {EXPECTED}"
        )
    if start[:1] != b"{":
        raise UsageError(f"`{path}` is not JSON (it starts with {start[:16]!r}): {EXPECTED}")
    try:
        with open(path, encoding="utf-8-sig") as file:
            document = json.load(file)
    except UnicodeDecodeError as exc:
        raise UsageError(f"`{path}` is not UTF-8 text (byte {exc.start:,}): {EXPECTED}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"`{path}` is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}: {EXPECTED}"
        ) from None
    _require_coco_keys(path, document)
    return document


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise UsageError(f"cannot read `{path}`: {exc.strerror}") from None


def _refuse_too_large(path: Path, size: int) -> None:
    available = _available_memory()
    needed = size * JSON_MEMORY_FACTOR
    if size <= MAX_JSON_BYTES and (available is None or needed <= available):
        return
    memory = f", {available / 1e9:.0f} GB are free now" if available is not None else ""
    raise UsageError(
        f"`{path}` is {size / 1e9:.1f} GB: headfit parses COCO JSON files up to {MAX_JSON_BYTES / 1e9:.0f} GB "
        f"and within the free memory (Python's json needs about {JSON_MEMORY_FACTOR} bytes per byte: "
        f"{needed / 1e9:.0f} GB here{memory}); COCO's own train2017 instances file is 0.45 GB. "
        "Split it into one JSON per split or per part, and check each"
    )


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# what the first annotation of COCO's other kinds of file holds, instead of a `bbox`
OTHER_KINDS = (
    ("segments_info", "a COCO panoptic file (each annotation is a PNG of segments, `segments_info`, not boxes)"),
    ("caption", "a COCO captions file (its annotations are sentences, not boxes)"),
    ("score", "a COCO results file (detections with `score`, as `headfit evaluate` writes)"),
)


def _require_coco_keys(path: Path, document: Any) -> None:
    if not isinstance(document, dict):
        raise UsageError(f"`{path}` holds a JSON {type(document).__name__}, not an object: {EXPECTED}")
    _refuse_other_kinds(path, document)
    missing = [k for k in ("images", "categories") if not isinstance(document.get(k), list)]
    if "annotations" in document and not isinstance(document["annotations"], list):
        missing.append("annotations")
    if missing:
        found = ", ".join(f"`{k}`" for k in list(document)[:8]) or "no keys"
        raise UsageError(
            f"`{path}` is JSON but not a COCO instances file: it has {found} and lacks a list under "
            f"{', '.join(f'`{k}`' for k in missing)}. {EXPECTED[0].upper()}{EXPECTED[1:]}"
        )


def _refuse_other_kinds(path: Path, document: dict[str, Any]) -> None:
    """A panoptic, captions or results file has the same top-level keys: its first annotation tells."""
    annotations = document.get("annotations")
    first = annotations[0] if isinstance(annotations, list) and annotations else None
    if not isinstance(first, dict) or ("bbox" in first and "score" not in first):
        return
    for key, kind in OTHER_KINDS:
        if key in first:
            raise UsageError(
                f"`{path}` is {kind}, not an instances file: its first annotation has `{key}` "
                f"({', '.join(f'`{k}`' for k in list(first)[:6])}). {EXPECTED[0].upper()}{EXPECTED[1:]}; "
                "for COCO's own data use `instances_<split>.json` from the same annotations archive"
            )


# -- categories and images -----------------------------------------------------------------------------


def _class_map(document: dict[str, Any], path: Path, problems: list[Problem]) -> ClassMap:
    by_id: dict[Any, str] = {}
    for k, category in enumerate(document["categories"]):
        cid = category.get("id") if isinstance(category, dict) else None
        if not isinstance(cid, int) or isinstance(cid, bool):
            raise UsageError(
                f"`{path}`: categories[{k}] has no integer `id` ({json.dumps(category)[:80]}): {EXPECTED}"
            )
        name = str(category.get("name", cid))
        if cid in by_id:
            problems.append(
                Problem(
                    "HF318",
                    f"category id {cid} is listed twice (`{by_id[cid]}` and `{name}`)",
                    f"give each category its own id; `{by_id[cid]}` (the first) is the one used",
                )
            )
            continue
        by_id[cid] = name
    _name_shared_by_ids(by_id, problems)
    ids = sorted(by_id)
    return ClassMap(ids=ids, names=[by_id[i] for i in ids])


def _name_shared_by_ids(by_id: dict[Any, str], problems: list[Problem]) -> None:
    ids_of: dict[str, list[Any]] = {}
    for cid, name in by_id.items():
        ids_of.setdefault(name, []).append(cid)
    for name, ids in ids_of.items():
        if len(ids) > 1:
            problems.append(
                Problem(
                    "HF318",
                    f"category name `{name}` has {len(ids)} ids ({', '.join(map(str, sorted(ids)))})",
                    f"merge them: keep one id for `{name}` and set every annotation's `category_id` to it",
                )
            )


def _image_records(
    entries: list[Any], finder: ImageFinder, problems: list[Problem], notes: list[str]
) -> list[ImageRecord]:
    records: list[ImageRecord] = []
    seen: dict[Any, str] = {}
    for k, entry in enumerate(entries):
        iid = _scalar(entry.get("id")) if isinstance(entry, dict) else None
        name = entry.get("file_name") if isinstance(entry, dict) else None
        if iid is None or not isinstance(name, str) or not name:
            problems.append(
                Problem(
                    "HF316",
                    f"images[{k}] has no `id` or `file_name` ({json.dumps(entry)[:80]})",
                    "give every image entry an `id` and the `file_name` of its image",
                    image_id=iid,
                )
            )
            continue
        if iid in seen:
            problems.append(
                Problem(
                    "HF312",
                    f"image id {iid} is used twice (`{seen[iid]}` and `{name}`); annotations with "
                    f"`image_id` {iid} are read as `{seen[iid]}`'s",
                    f"give `{name}` an id of its own and point its annotations at it",
                    image_id=iid,
                    file=name,
                )
            )
            continue
        seen[iid] = name
        file, note = finder.find(name)
        if note:
            notes.append(f"image {iid}: {note}")
        records.append(ImageRecord(iid, file, None, None, declared_size=_declared_size(entry)))
    return records


def _declared_size(entry: dict[str, Any]) -> tuple[int, int] | None:
    width, height = entry.get("width"), entry.get("height")
    if isinstance(width, (int, float)) and isinstance(height, (int, float)):
        return int(width), int(height)
    return None


def image_folders(path: Path, images: Path | None) -> list[Path]:
    """Where a COCO JSON's ``file_name``s may be relative to, most specific first."""
    if images is not None:
        require_image_folder(images)
        return [images]
    here = path.parent
    folders = [here, here / "images"]
    stem = path.stem  # COCO's layout: annotations/instances_val2017.json beside val2017/
    for prefix in ("instances_", "person_keypoints_", "captions_"):
        if stem.startswith(prefix):
            folders += [here.parent / stem.removeprefix(prefix), here / stem.removeprefix(prefix)]
    folders += [here.parent / "images", here.parent]
    return folders


def _where_hint(path: Path, images: Path | None) -> str:
    if images is not None:
        return f"`file_name`s are read relative to `--images {images}`: give the folder they are relative to"
    return "pass `--images DIR`, the folder the `file_name`s are relative to"


# -- annotations ---------------------------------------------------------------------------------------


def _attach_annotations(annotations: list[Any], records: list[ImageRecord], problems: list[Problem]) -> None:
    """Group the annotations by image, as arrays; what cannot be read is a problem, never dropped silently."""
    where = {r.image_id: i for i, r in enumerate(records)}
    columns = _columns_at_once(annotations, where) or _columns_one_by_one(
        annotations, where, records, problems
    )
    owner, boxes, categories, crowd, ids, masks = columns
    _unknown_category_types(categories, ids, owner, records, problems)
    _fill(records, owner, boxes, categories, crowd, ids, masks)


def _columns_at_once(annotations: list[Any], where: dict[Any, int]):
    """The fast path, for a file where every annotation is well formed and names a listed image: one
    numpy conversion of all boxes instead of 100,000 checks in Python, each column one ``map`` over
    the dicts in C. None sends the file through the careful path, which names each annotation that
    is not."""
    try:
        boxes = np.asarray(list(map(itemgetter("bbox"), annotations)))
        owner = list(map(where.__getitem__, map(itemgetter("image_id"), annotations)))
        categories = list(map(dict.get, annotations, repeat("category_id")))
    except (KeyError, TypeError, ValueError):
        return None
    if (
        boxes.ndim != 2
        or boxes.shape[1] != 4
        or boxes.dtype.kind not in "iuf"
        or not np.isfinite(boxes).all()
    ):
        return None
    crowd = list(map(dict.get, annotations, repeat("iscrowd"), repeat(0)))
    ids = list(map(dict.get, annotations, repeat("id")))
    if not set(map(type, ids)) <= {int, str}:  # `None in ids` compares each int with None: 4x slower
        ids = [f"annotations[{k}]" if i is None else i for k, i in enumerate(ids)]
    masks = list(map(dict.get, annotations, repeat("segmentation")))
    return owner, boxes, categories, crowd, ids, masks


def _columns_one_by_one(
    annotations: list[Any], where: dict[Any, int], records: list[ImageRecord], problems: list[Problem]
):
    owner, boxes, categories, crowd, ids, masks = [], [], [], [], [], []
    for k, ann in enumerate(annotations):
        box = _bbox(ann)
        if box is None:
            problems.append(_malformed(k, ann, where, records))
            continue
        index = where.get(_scalar(ann.get("image_id")))
        if index is None:
            problems.append(_orphan(ann))
            continue
        owner.append(index)
        boxes.append(box)
        categories.append(ann.get("category_id"))
        crowd.append(bool(ann.get("iscrowd", 0)))
        ids.append(ann.get("id", f"annotations[{k}]"))
        masks.append(ann.get("segmentation"))
    return owner, boxes, categories, crowd, ids, masks


def _scalar(value: Any) -> Any:
    """An id that can be a dict key (a JSON list or object as an id is no id)."""
    return value if isinstance(value, (int, str, float)) else None


def _bbox(ann: Any) -> list[float] | None:
    if not isinstance(ann, dict):
        return None
    box = ann.get("bbox")
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box):
        return None
    return box


def _malformed(k: int, ann: Any, where: dict[Any, int], records: list[ImageRecord]) -> Problem:
    aid = ann.get("id") if isinstance(ann, dict) else None
    iid = ann.get("image_id") if isinstance(ann, dict) else None
    box = ann.get("bbox") if isinstance(ann, dict) else None
    shown = json.dumps(box) if box is not None else "no `bbox`"
    record = records[where[_scalar(iid)]] if _scalar(iid) in where else None
    return Problem(
        "HF316",
        f"annotation {aid if aid is not None else f'annotations[{k}]'}: `bbox` is not 4 finite numbers ({shown[:60]})",
        "write `bbox` as [x, y, width, height] in pixels; `--fix OUT` drops the annotation",
        image_id=iid,
        annotation_id=aid,
        file=str(record.file) if record else None,
    )


def _orphan(ann: dict[str, Any]) -> Problem:
    aid, iid = ann.get("id"), ann.get("image_id")
    return Problem(
        "HF305",
        f"annotation {aid} points at image id {iid}, which `images` does not list",
        f"add image {iid} to `images`, or correct the annotation's `image_id`; `--fix OUT` drops it",
        image_id=iid,
        annotation_id=aid,
    )


def _unknown_category_types(categories, ids, owner, records, problems) -> None:
    """A category id that is not an integer (``"3"``, null) cannot be an array entry: -1 stands in."""
    if set(map(type, categories)) <= {int}:
        return
    for k, cid in enumerate(categories):
        if isinstance(cid, int) and not isinstance(cid, bool):
            continue
        record = records[owner[k]]
        problems.append(
            Problem(
                "HF306",
                f"annotation {ids[k]} has `category_id` {json.dumps(cid)}, not an integer id from `categories`",
                "set `category_id` to the integer id of one of `categories`; `--fix OUT` drops the annotation",
                image_id=record.image_id,
                annotation_id=ids[k],
                file=str(record.file),
            )
        )
        categories[k] = -1


def _fill(records, owner, boxes, categories, crowd, ids, masks) -> None:
    """Each record's slice of the annotation arrays (views of one array per field)."""
    if not len(owner):
        return
    owner_arr = np.asarray(owner, dtype=np.int64)
    grouped = bool(np.all(owner_arr[1:] >= owner_arr[:-1]))  # most files list annotations by image
    order = slice(None) if grouped else np.argsort(owner_arr, kind="stable")
    xywh = np.asarray(boxes, dtype=np.float64)[order]
    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).astype(np.float32)
    cats = np.asarray(categories, dtype=np.int64)[order]
    crowd_arr = np.asarray(crowd, dtype=bool)[order]
    ordered_ids = ids if grouped else [ids[i] for i in order]
    has_masks = any(masks)
    ordered_masks = (masks if grouped else [masks[i] for i in order]) if has_masks else None
    counts = np.bincount(owner_arr, minlength=len(records))
    ends = np.cumsum(counts)
    filled = np.flatnonzero(counts)
    bounds = zip(filled.tolist(), (ends - counts)[filled].tolist(), ends[filled].tolist(), strict=True)
    for i, start, end in bounds:  # plain ints: numpy scalars would cost a microsecond per operation
        record = records[i]
        record.boxes = xyxy[start:end]
        record.category_ids = cats[start:end]
        record.crowd = crowd_arr[start:end]
        record.annotation_ids = ordered_ids[start:end]
        if ordered_masks is not None:
            record.segmentations = ordered_masks[start:end]
