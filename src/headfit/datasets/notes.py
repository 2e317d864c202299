"""Notes: what ``data check`` tells without calling it a problem, because training handles it
(images without boxes, crowd boxes, gapped category ids, grayscale or 16-bit images, TIFFs, more
boxes per image than a detector keeps, a same-stem twin beside an image)."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np

from headfit.datasets.geometry import size_repair
from headfit.datasets.headers import mode_words
from headfit.datasets.problems import Id
from headfit.datasets.records import DetectionDataset
from headfit.datasets.resolve import Listings
from headfit.datasets.table import BoxTable, quoted

MAX_DETECTIONS = 100  # torchvision's detections_per_img and COCO's maxDets default
TORCHVISION_DECODES = {"JPEG", "PNG", "WEBP", "GIF", "MPO"}
SHOWN = 3  # ids a note names before "and N more"


def dataset_notes(dataset: DetectionDataset, table: BoxTable) -> list[str]:
    notes = []
    notes += _class_notes(dataset, table)
    negatives = [
        dataset.images[i].image_id
        for i in np.flatnonzero(table.counts == 0).tolist()
        if dataset.images[i].header is None or dataset.images[i].header.usable
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
    notes += _box_count_notes(dataset, table)
    notes += _twin_notes(dataset, table)
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
    usable = [r.header for r in dataset.images if r.header is not None and r.header.usable]
    modes: Counter[str] = Counter()
    for mode, n in Counter(h.mode for h in usable).items():  # one word lookup per mode, not per image
        word = mode_words(mode)
        if word is not None:
            modes[word] += n
    if modes:
        kinds = ", ".join(f"{n:,} {word}" for word, n in modes.most_common())
        notes.append(f"images that are not 8-bit RGB ({kinds}): decode_image converts them to 8-bit RGB")
    formats = Counter(h.format for h in usable)
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


def _box_count_notes(dataset: DetectionDataset, table: BoxTable) -> list[str]:
    if not dataset.images or table.counts.max() <= MAX_DETECTIONS:
        return []
    busiest = dataset.images[int(table.counts.argmax())]
    crowded = int((table.counts > MAX_DETECTIONS).sum())
    return [
        f"{_count([0] * crowded, 'image')} {'have' if crowded > 1 else 'has'} more than {MAX_DETECTIONS} boxes (image {quoted(busiest.image_id)} has "
        f"{busiest.num_boxes}): torchvision detectors keep {MAX_DETECTIONS} detections per image "
        f"(`box_detections_per_img` / `detections_per_img`) and COCO's mAP counts {MAX_DETECTIONS} (`maxDets`); "
        f"raise both to at least {busiest.num_boxes}"
    ]


def _twin_notes(dataset: DetectionDataset, table: BoxTable) -> list[str]:
    """Images with a same-stem twin beside them that the annotations do not name (a .tif and its .png)."""
    listings = Listings()
    shared_stems = {  # folder -> stems that more than one image file has
        folder: {stem for stem, files in listings.image_stems(folder).items() if len(files) > 1}
        for folder in dict.fromkeys(table.folders)
    }
    if not any(shared_stems.values()):
        return []
    named = set(zip(table.folders, table.names, strict=True))
    twins = []
    for folder, name in zip(table.folders, table.names, strict=True):
        stem = os.path.splitext(name)[0].lower()
        if stem not in shared_stems[folder]:
            continue
        for other in listings.image_stems(folder)[stem]:
            if other != name and (folder, other) not in named:
                twins.append(f"`{name}` / `{other}`")
    if not twins:
        return []
    return [
        f"{len(twins)} annotated image{'s have' if len(twins) > 1 else ' has'} a twin with the same stem beside "
        f"{'them' if len(twins) > 1 else 'it'} that the annotations do not name ({', '.join(twins[:SHOWN])}"
        f"{', ...' if len(twins) > SHOWN else ''}): only the named file is trained on, and a folder of both predicts the picture twice"
    ]


def _count(items: list, noun: str) -> str:
    return f"{len(items):,} {noun}{'s' if len(items) != 1 else ''}"


def _some(ids: list[Id]) -> str:
    shown = ", ".join(quoted(i) for i in ids[:SHOWN])
    return shown + (f" and {len(ids) - SHOWN:,} more" if len(ids) > SHOWN else "")


def _ids(ids: list[Id]) -> str:
    return ", ".join(map(str, ids[:12])) + (", ..." if len(ids) > 12 else "")
