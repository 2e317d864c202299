"""Pascal VOC: one XML per image (``<filename>``, ``<size>``, an ``<object>`` with ``<name>`` and
``<bndbox>`` per box), in ``Annotations/`` beside ``JPEGImages/`` and ``ImageSets/Main/<split>.txt``, or
loose beside their images (LabelImg's layout), or one ``.xml`` file.

VOC counts pixels from 1 (``xmin`` 1 is the first column, ``xmax`` the last one included), so a box
becomes ``x1 = xmin - 1, x2 = xmax`` in headfit's continuous pixels, as detectron2 reads VOC; when
some ``xmin`` or ``ymin`` is 0 the files were written 0-based and are read as they are (a note says
which). Classes are the ``<name>`` values, sorted; image ids are the XML stems; annotation ids are
``file.xml#k`` (the k-th object, from 1).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from headfit.datasets.problems import Problem
from headfit.datasets.records import ClassMap, DetectionDataset, ImageRecord
from headfit.datasets.resolve import ImageFinder, attach_headers, new_record
from headfit.errors import UsageError

COORDS = ("xmin", "ymin", "xmax", "ymax")


@dataclass
class _Parsed:
    """One XML file as read, before the 1-based decision is made for the whole dataset."""

    xml: Path
    filename: str | None
    path_hint: str | None
    declared: tuple[int, int] | None
    boxes: list[list[float]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    difficult: int = 0


def read_voc(path: Path, images: Path | None = None, split: str | None = None) -> DetectionDataset:
    xmls, image_folders = _layout(path, split, images)
    problems: list[Problem] = []
    notes: list[str] = []
    parsed = [_parse(x, problems) for x in xmls]
    parsed = [p for p in parsed if p is not None]
    one_based = _one_based(parsed, notes)
    finder = ImageFinder(image_folders)
    records = [_record(p, finder, one_based, notes, problems) for p in parsed]
    notes += finder.notes()
    attach_headers(
        records, path, "put the images in `JPEGImages/` or beside their XML, or pass `--images DIR`"
    )
    names = sorted({n for p in parsed for n in p.names})
    difficult = sum(p.difficult for p in parsed)
    if difficult:
        notes.append(f"{difficult:,} objects are marked `difficult`: they are read as ordinary boxes")
    return DetectionDataset(
        records, ClassMap(ids=list(names), names=list(names)), path, "voc", split, problems, notes
    )


def voc_splits(path: Path) -> list[str]:
    main = path / "ImageSets" / "Main" if path.is_dir() else None
    if main is None or not main.is_dir():
        return []
    return sorted(p.stem for p in main.glob("*.txt") if "_" not in p.stem)


def _layout(path: Path, split: str | None, images: Path | None) -> tuple[list[Path], list[Path]]:
    """The XML files to read and the folders their images may be in."""
    if path.is_file():
        return [path], [images] if images else [path.parent, path.parent.parent / "JPEGImages"]
    annotations = path / "Annotations"
    if annotations.is_dir():
        folders = [images] if images else [path / "JPEGImages", path / "images", path]
        return _in_split(path, annotations, split), folders
    xmls = sorted(path.glob("*.xml"))
    if split is not None:
        raise UsageError(
            f"`{path}` holds loose VOC files without `ImageSets/Main/`, so it has no `{split}` split"
        )
    return xmls, [images] if images else [path]


def _in_split(root: Path, annotations: Path, split: str | None) -> list[Path]:
    if split is None:
        xmls = sorted(annotations.glob("*.xml"))
        if not xmls:
            raise UsageError(f"`{annotations}` holds no .xml annotation files")
        return xmls
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file():
        known = voc_splits(root)
        raise UsageError(
            f"`{root}` has no `ImageSets/Main/{split}.txt`; its splits: {', '.join(known) or 'none'}"
        )
    stems = [line.split()[0] for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [annotations / f"{stem}.xml" for stem in stems]


def _parse(xml: Path, problems: list[Problem]) -> _Parsed | None:
    try:
        tree = ET.parse(xml)
    except FileNotFoundError:
        problems.append(
            Problem(
                "HF316",
                f"`{xml.name}` is listed in the split but does not exist",
                "add the XML or take its line out of the split file",
                xml.stem,
            )
        )
        return None
    except ET.ParseError as exc:
        problems.append(
            Problem("HF316", f"`{xml.name}` is not valid XML ({exc})", "repair or delete the file", xml.stem)
        )
        return None
    root = tree.getroot()
    parsed = _Parsed(xml, _text(root, "filename"), _text(root, "path"), _size(root))
    for k, obj in enumerate(root.iter("object"), 1):
        annotation_id = f"{xml.name}#{k}"
        box = _bndbox(obj)
        name = _text(obj, "name")
        if box is None or not name:
            what = "no `<name>`" if box is not None else "no `<bndbox>` with four numbers"
            problems.append(
                Problem(
                    "HF316",
                    f"object {k} of `{xml.name}` has {what}",
                    "give every `<object>` a `<name>` and a `<bndbox>` with xmin, ymin, xmax, ymax; `--fix OUT` drops it",
                    xml.stem,
                    annotation_id,
                )
            )
            continue
        parsed.boxes.append(box)
        parsed.names.append(name)
        parsed.ids.append(annotation_id)
        parsed.difficult += _text(obj, "difficult") == "1"
    return parsed


def _text(node: ET.Element, tag: str) -> str | None:
    child = node.find(tag)
    return child.text.strip() if child is not None and child.text and child.text.strip() else None


def _size(root: ET.Element) -> tuple[int, int] | None:
    size = root.find("size")
    if size is None:
        return None
    try:
        width, height = int(float(_text(size, "width") or "")), int(float(_text(size, "height") or ""))
    except ValueError:
        return None
    return (width, height) if width > 0 and height > 0 else None


def _bndbox(obj: ET.Element) -> list[float] | None:
    box = obj.find("bndbox")
    if box is None:
        return None
    try:
        values = [float(_text(box, c) or "") for c in COORDS]
    except ValueError:
        return None
    return values if all(np.isfinite(values)) else None


def _one_based(parsed: list[_Parsed], notes: list[str]) -> bool:
    firsts = [min(b[0], b[1]) for p in parsed for b in p.boxes]
    if not firsts:
        return True
    if min(firsts) <= 0:
        notes.append(
            "some `xmin`/`ymin` are 0, so the VOC boxes are read as 0-based pixel coordinates, as written"
        )
        return False
    notes.append("VOC boxes are 1-based (`xmin` 1 is the first pixel): read as x1 = xmin - 1, x2 = xmax")
    return True


def _record(
    parsed: _Parsed, finder: ImageFinder, one_based: bool, notes: list[str], problems: list[Problem]
) -> ImageRecord:
    file, note = _image_file(parsed, finder)
    if note:
        notes.append(f"`{parsed.xml.name}`: {note}")
    boxes = np.asarray(parsed.boxes, dtype=np.float64).reshape(-1, 4)
    if one_based:
        boxes[:, :2] -= 1.0
    return new_record(parsed.xml.stem, file, boxes, parsed.names, parsed.ids, parsed.declared)


def _image_file(parsed: _Parsed, finder: ImageFinder) -> tuple[Path, str | None]:
    name = parsed.filename or f"{parsed.xml.stem}.jpg"
    file, note = finder.find(name)
    if not file.exists() and parsed.path_hint and Path(parsed.path_hint).exists():
        return Path(parsed.path_hint), f"`{name}` is not beside it; `<path>` {parsed.path_hint} is used"
    if not file.exists() and parsed.filename is not None and Path(name).stem != parsed.xml.stem:
        named_like_xml, _ = finder.find(f"{parsed.xml.stem}{Path(name).suffix or '.jpg'}")
        if named_like_xml.exists():
            return named_like_xml, (
                f"`<filename>` {name} does not exist; `{named_like_xml.name}`, named like the XML, was used "
                f"(set `<filename>` to `{named_like_xml.name}`)"
            )
    if parsed.filename is None:
        note = f"no `<filename>`: the image was looked for by its stem ({file.name})"
    return file, note
