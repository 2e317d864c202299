"""``data check DATA --fix OUT``: a cleaned COCO JSON, every change listed, the original never written.

What can be clipped is clipped (a box past the edge), what is unambiguous is converted (a COCO file
of x1,y1,x2,y2 boxes, swapped corners, YOLO pixels, boxes drawn before an EXIF rotation or before
the image was resized), sizes are re-read from the files, and only what cannot be used is dropped
(a missing or broken image, a zero-size box, an unknown class, a partly annotated image). OUT is read
back and checked: it must have no problem left.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from headfit.datasets.geometry import clip_boxes, size_repair, xyxy_text
from headfit.datasets.lint import lint, looks_xyxy, other_annotation_problems
from headfit.datasets.problems import Id
from headfit.datasets.records import ClassMap, DetectionDataset, ImageRecord
from headfit.datasets.report import Change, FixResult
from headfit.datasets.table import BoxTable, frame
from headfit.errors import UsageError
from headfit.files import atomic_write_text

DROPPED_AT_READ = {"HF305", "HF306", "HF307", "HF312", "HF316"}  # what a reader could not attach


def fix(dataset: DetectionDataset, out: Path | str) -> FixResult:
    """Write the repaired ``dataset`` to ``out`` as COCO and check it again."""
    out = Path(out)
    _refuse_overwriting_source(dataset, out)
    repaired, changes = repair(dataset)
    write_coco(repaired, out)
    from headfit.datasets.coco import read_coco

    again = lint(read_coco(out))
    return FixResult(out, changes, len(repaired.images), repaired.num_annotations, again.ok, again.problems)


def _refuse_overwriting_source(dataset: DetectionDataset, out: Path) -> None:
    source = Path(dataset.source)
    suggestion = source.with_name(f"{source.stem}.fixed.json") if source.is_file() else source / "fixed.json"
    if out.is_dir():
        raise UsageError(
            f"--fix `{out}` is a folder: --fix writes one COCO JSON file; give its name, e.g. `--fix {out / 'fixed.json'}`"
        )
    if out.resolve() == source.resolve() or (out.exists() and os.path.samefile(out, source)):
        raise UsageError(
            f"--fix `{out}` is DATA itself: --fix writes a new COCO JSON and never changes the original; "
            f"give a new file name, e.g. `--fix {suggestion}`"
        )


def repair(dataset: DetectionDataset) -> tuple[DetectionDataset, list[Change]]:
    """The dataset with every problem resolved, and the list of what changed."""
    changes = [_read_change(p) for p in dataset.problems if p.code in DROPPED_AT_READ]
    classes, merged_ids = _merged_classes(dataset, changes)
    records = _usable_images(dataset, changes)
    records = _merge_duplicate_files(records, changes)
    corners = looks_xyxy(dataset, BoxTable.of(dataset)) is not None
    pixels = {(p.image_id, p.annotation_id) for p in dataset.problems if p.code == "HF314"}
    fixed = [_repair_record(r, dataset, classes, merged_ids, corners, pixels, changes) for r in records]
    if corners:
        changes.insert(
            0,
            Change(
                "converted",
                f"read every `bbox` as x1,y1,x2,y2 ({sum(r.num_boxes for r in records):,} boxes)",
                "HF304",
            ),
        )
    _renumber_annotations(fixed, changes)
    return replace(dataset, images=fixed, classes=classes, problems=[], notes=[]), changes


def _read_change(problem) -> Change:
    return Change("dropped", problem.summary, problem.code, problem.image_id, problem.annotation_id)


def _merged_classes(dataset: DetectionDataset, changes: list[Change]) -> tuple[ClassMap, dict[Id, Id]]:
    """One id per class name (HF318): the later ids of a name map to its first."""
    first_of: dict[str, Id] = {}
    merged: dict[Id, Id] = {}
    for cid, name in zip(dataset.classes.ids, dataset.classes.names, strict=True):
        keep = first_of.setdefault(name, cid)
        if keep != cid:
            merged[cid] = keep
            changes.append(
                Change("merged", f"category {cid} (`{name}`) merged into category {keep}", "HF318")
            )
    ids = [c for c in dataset.classes.ids if c not in merged]
    names = [dataset.classes.names[dataset.classes.index_of(c)] for c in ids]
    return ClassMap(ids, names), merged


def _usable_images(dataset: DetectionDataset, changes: list[Change]) -> list[ImageRecord]:
    partial = {p.image_id: p for p in other_annotation_problems(dataset)}
    kept = []
    for record in dataset.images:
        header = record.header
        if header is not None and not header.usable:
            code = {"missing": "HF308", "truncated": "HF310"}.get(header.status, "HF309")
            changes.append(_dropped_image(record, code, f"the file is {header.status}"))
        elif record.image_id in partial:
            changes.append(_dropped_image(record, "HF317", "it is only partly annotated"))
        else:
            kept.append(record)
    return kept


def _dropped_image(record: ImageRecord, code: str, why: str) -> Change:
    return Change(
        "dropped",
        f"image {record.image_id} (`{record.file.name}`) and its {record.num_boxes} boxes: {why}",
        code,
        record.image_id,
    )


def _merge_duplicate_files(records: list[ImageRecord], changes: list[Change]) -> list[ImageRecord]:
    by_file: dict[str, ImageRecord] = {}
    kept = []
    for record in records:
        key = os.path.normcase(os.path.abspath(record.file))
        first = by_file.get(key)
        if first is None:
            by_file[key] = record
            kept.append(record)
            continue
        moved = _new_boxes(first, record)
        _append(first, record, moved)
        changes.append(
            Change(
                "merged",
                f"image {record.image_id} is the same file as image {first.image_id}: {int(moved.sum())} of its "
                f"{record.num_boxes} boxes moved to it (the rest were exact duplicates)",
                "HF313",
                record.image_id,
            )
        )
    return kept


def _new_boxes(first: ImageRecord, other: ImageRecord) -> np.ndarray:
    if not first.num_boxes:
        return np.ones(other.num_boxes, dtype=bool)
    same = (other.boxes[:, None, :] == first.boxes[None, :, :]).all(axis=2)
    same &= other.category_ids[:, None] == first.category_ids[None, :]
    return ~same.any(axis=1)


def _append(first: ImageRecord, other: ImageRecord, keep: np.ndarray) -> None:
    first.boxes = np.concatenate([first.boxes, other.boxes[keep]])
    first.category_ids = np.concatenate([first.category_ids, other.category_ids[keep]])
    first.crowd = np.concatenate([first.crowd, other.crowd[keep]])
    first.annotation_ids = first.annotation_ids + [
        a for a, k in zip(other.annotation_ids, keep, strict=True) if k
    ]
    if first.segmentations is not None or other.segmentations is not None:
        mine = first.segmentations or [None] * (first.num_boxes - int(keep.sum()))
        theirs = other.segmentations or [None] * other.num_boxes
        first.segmentations = mine + [s for s, k in zip(theirs, keep, strict=True) if k]


def _repair_record(
    record: ImageRecord,
    dataset: DetectionDataset,
    classes: ClassMap,
    merged_ids: dict[Id, Id],
    corners: bool,
    pixels: set[tuple[Id, Id]],
    changes: list[Change],
) -> ImageRecord:
    boxes = record.boxes.astype(np.float64)
    if corners:  # the stored "w, h" were x2, y2: records hold x + w, so x2 = (x + w) - x
        boxes = np.stack(
            [boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1
        )
    boxes = _pixels_to_boxes(record, boxes, pixels, changes)
    sized = size_repair(replace(record, boxes=boxes))
    if sized is not None:
        boxes = sized.boxes.astype(np.float64)
        changes.append(
            Change(
                "resized",
                f"image {record.image_id}: {record.declared_size[0]}x{record.declared_size[1]} -> {record.width}x{record.height}; {sized.words}",
                "HF311",
                record.image_id,
            )
        )
    width, height = frame(record)
    keep = np.ones(len(boxes), dtype=bool)
    category_ids = np.array(
        [merged_ids.get(c, c) for c in record.category_ids.tolist()], dtype=record.category_ids.dtype
    )
    for k in range(len(boxes)):
        keep[k], boxes[k] = _repair_box(record, k, boxes[k], category_ids[k], classes, width, height, changes)
    segmentations = record.segmentations
    if segmentations is not None:
        unchanged = (boxes == record.boxes.astype(np.float64)).all(axis=1)
        segmentations = [s if same else None for s, same in zip(segmentations, unchanged, strict=True)]
        segmentations = [s for s, k in zip(segmentations, keep, strict=True) if k]
    return replace(
        record,
        boxes=boxes[keep].astype(np.float32),
        category_ids=category_ids[keep],
        crowd=record.crowd[keep],
        annotation_ids=[a for a, k in zip(record.annotation_ids, keep, strict=True) if k],
        segmentations=segmentations,
        declared_size=(record.width, record.height) if record.width is not None else record.declared_size,
    )


def _pixels_to_boxes(
    record: ImageRecord, boxes: np.ndarray, pixels: set, changes: list[Change]
) -> np.ndarray:
    """YOLO lines written in pixels (HF314): the reader scaled them by the image size once too often."""
    if not pixels or record.width is None:
        return boxes
    scale = np.array([record.width, record.height, record.width, record.height], dtype=np.float64)
    for k, aid in enumerate(record.annotation_ids):
        if (record.image_id, aid) in pixels:
            boxes[k] = boxes[k] / scale
            changes.append(
                Change(
                    "converted",
                    f"`{aid}` read as pixels: x1,y1,x2,y2 = {xyxy_text(boxes[k])}",
                    "HF314",
                    record.image_id,
                    aid,
                )
            )
    return boxes


def _repair_box(record, k, box, category_id, classes, width, height, changes) -> tuple[bool, np.ndarray]:
    aid = record.annotation_ids[k]
    if not classes.knows(category_id):
        changes.append(
            Change(
                "dropped",
                f"annotation {aid}: category id {category_id} is not in the categories",
                "HF306",
                record.image_id,
                aid,
            )
        )
        return False, box
    w, h = box[2] - box[0], box[3] - box[1]
    if w == 0 or h == 0:
        changes.append(
            Change(
                "dropped", f"annotation {aid}: zero-size box {xyxy_text(box)}", "HF301", record.image_id, aid
            )
        )
        return False, box
    if w < 0 or h < 0:
        ordered = np.array(
            [min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])]
        )
        changes.append(
            Change(
                "converted",
                f"annotation {aid}: corners reordered to {xyxy_text(ordered)}",
                "HF302",
                record.image_id,
                aid,
            )
        )
        box = ordered
    if np.isnan(width):
        return True, box
    clipped = clip_boxes(box[None, :], width, height)[0]
    if (clipped[2] - clipped[0]) <= 0 or (clipped[3] - clipped[1]) <= 0:
        changes.append(
            Change(
                "dropped",
                f"annotation {aid}: box {xyxy_text(box)} lies outside the {width:.0f}x{height:.0f} image",
                "HF303",
                record.image_id,
                aid,
            )
        )
        return False, box
    if not np.array_equal(clipped, box):
        changes.append(
            Change(
                "clipped",
                f"annotation {aid}: {xyxy_text(box)} -> {xyxy_text(clipped)}",
                "HF303",
                record.image_id,
                aid,
            )
        )
    return True, clipped


def _renumber_annotations(records: list[ImageRecord], changes: list[Change]) -> None:
    """Later uses of an annotation id get fresh ids (HF315); ids that are not integers are kept as given
    by ``write_coco`` (it numbers those)."""
    seen: set[Id] = set()
    integers = [a for r in records for a in r.annotation_ids if isinstance(a, int)]
    fresh = max(integers, default=0) + 1
    for record in records:
        for k, aid in enumerate(record.annotation_ids):
            if not isinstance(aid, int):
                continue
            if aid in seen:
                record.annotation_ids[k] = fresh
                changes.append(
                    Change(
                        "renumbered",
                        f"annotation id {aid} (second use, image {record.image_id}) -> {fresh}",
                        "HF315",
                        record.image_id,
                        aid,
                    )
                )
                fresh += 1
            seen.add(record.annotation_ids[k])


# -- writing COCO --------------------------------------------------------------------------------------


def write_coco(dataset: DetectionDataset, out: Path) -> None:
    """``dataset`` as a COCO instances JSON at ``out`` (file names relative to its folder), atomically."""
    document = coco_document(dataset, out.parent)
    atomic_write_text(out, json.dumps(document))


def coco_document(dataset: DetectionDataset, root: Path) -> dict[str, Any]:
    category_of = _coco_category_ids(dataset.classes)
    image_of = _coco_ids([r.image_id for r in dataset.images])
    annotation_ids = [a for r in dataset.images for a in r.annotation_ids]
    annotation_of = _coco_ids(annotation_ids)
    images, annotations = [], []
    for record in dataset.images:
        entry: dict[str, Any] = {"id": image_of[record.image_id], "file_name": _relative(record.file, root)}
        size = (record.width, record.height) if record.width is not None else record.declared_size
        if size is not None:
            entry["width"], entry["height"] = int(size[0]), int(size[1])
        images.append(entry)
        categories = record.category_ids.tolist()
        for k in range(record.num_boxes):
            annotations.append(
                _annotation(record, k, image_of[record.image_id], annotation_of, category_of[categories[k]])
            )
    names = zip(dataset.classes.ids, dataset.classes.names, strict=True)
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": category_of[c], "name": n} for c, n in names],
    }


def _annotation(
    record: ImageRecord, k: int, image_id: int, annotation_of: dict[Id, int], category_id: int
) -> dict[str, Any]:
    x1, y1, x2, y2 = (float(v) for v in record.boxes[k])
    entry = {
        "id": annotation_of[record.annotation_ids[k]],
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x1, y1, x2 - x1, y2 - y1],
        "area": (x2 - x1) * (y2 - y1),
        "iscrowd": int(bool(record.crowd[k])),
    }
    if record.segmentations is not None and record.segmentations[k]:
        entry["segmentation"] = record.segmentations[k]
    return entry


def _coco_category_ids(classes: ClassMap) -> dict[Id, int]:
    if all(isinstance(c, int) for c in classes.ids):
        return {c: c for c in classes.ids}
    return {c: k + 1 for k, c in enumerate(classes.ids)}  # VOC / CSV names: ids 1..K in name order


def _coco_ids(ids: list[Id]) -> dict[Id, int]:
    """Integer ids stay as they are; a dataset named by strings (YOLO, VOC, CSV) is numbered from 1."""
    if all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids):
        return {i: i for i in ids}
    return {i: k + 1 for k, i in enumerate(dict.fromkeys(ids))}


def _relative(file: Path, root: Path) -> str:
    try:
        return os.path.relpath(os.path.abspath(file), os.path.abspath(root)).replace(os.sep, "/")
    except ValueError:
        return str(file)
