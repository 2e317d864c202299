"""YOLO: a ``data.yaml`` (``path``, ``train`` / ``val`` / ``test``, ``names``), images, and one
``labels/*.txt`` per image with a ``class cx cy w h`` line per box (normalised to 0..1).

A split is a folder of images, a ``.txt`` listing image paths, or a list of either, relative to
``path`` (itself relative to the YAML's folder). An image's label file is its path with the last
``images`` folder replaced by ``labels`` and the suffix by ``.txt``, as ultralytics finds it; an image
without one has no boxes. A line with more than five numbers is a polygon (YOLO segmentation): its box
is the polygon's extent. Image ids are paths relative to the dataset root; category ids are the class
indices 0..K-1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from headfit.datasets.headers import is_image_file
from headfit.datasets.problems import Problem
from headfit.datasets.records import ClassMap, DetectionDataset, ImageRecord
from headfit.datasets.resolve import ImageFinder, attach_headers, images_in, new_record
from headfit.errors import UsageError

SPLIT_KEYS = ("train", "val", "test")
EXPECTED = (
    "a YOLO data.yaml names the dataset root (`path`), the splits (`train: images/train`, `val: images/val`) "
    "and the classes (`names: [cat, dog]` or `names: {0: cat, 1: dog}`)"
)


def read_yolo(path: Path, images: Path | None = None, split: str | None = None) -> DetectionDataset:
    config = _load_yaml(path)
    classes = _class_map(config, path)
    problems: list[Problem] = []
    notes: list[str] = []
    root = _root(config, path, notes)
    split = split or "train"
    image_paths = _split_images(config, split, root, path, images, notes)
    records = [_record(p, root) for p in image_paths]
    attach_headers(records, path, f"check the `{split}` entry of `{path}` and its `path`")
    labelled = 0
    for record in records:
        labelled += _read_labels(record, root, len(classes), problems)
    if labelled < len(records):
        notes.append(
            f"{len(records) - labelled:,} of {len(records):,} images have no label file: YOLO reads them as "
            "images without objects (negatives)"
        )
    _shared_label_files(records, root, problems)
    _labels_without_image(image_paths, root, problems)
    return DetectionDataset(records, classes, path, "yolo", split, problems=problems, notes=notes)


def yolo_splits(path: Path) -> list[str]:
    config = _load_yaml(path)
    return [k for k in SPLIT_KEYS if config.get(k)]


# -- the YAML ------------------------------------------------------------------------------------------


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read `{path}`: {exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise UsageError(
            f"`{path}` is not valid YAML{at} ({getattr(exc, 'problem', exc)}): {EXPECTED}"
        ) from None
    if not isinstance(config, dict):
        raise UsageError(f"`{path}` holds a YAML {type(config).__name__}, not a mapping: {EXPECTED}")
    return config


def _class_map(config: dict[str, Any], path: Path) -> ClassMap:
    names = config.get("names")
    if isinstance(names, dict):
        try:
            order = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise UsageError(
                f"`{path}`: the keys of `names` must be class indices 0..K-1: {EXPECTED}"
            ) from None
        if order != list(range(len(order))):
            raise UsageError(
                f"`{path}`: `names` has the indices {order}, not 0..{len(order) - 1}: {EXPECTED}"
            )
        names = [names[k] if k in names else names[str(k)] for k in order]
    if not isinstance(names, list) or not names:
        count = f" (it says `nc: {config['nc']}`)" if "nc" in config else ""
        raise UsageError(
            f"`{path}` has no `names`{count}: headfit needs the class names in order. {EXPECTED}"
        )
    return ClassMap(ids=list(range(len(names))), names=[str(n) for n in names])


def _root(config: dict[str, Any], path: Path, notes: list[str]) -> Path:
    """The dataset root the splits are relative to: ``path`` relative to the YAML's folder, or to the
    working folder (as ultralytics reads it); a ``path`` that is not here (written on another machine)
    falls back to the YAML's folder when the splits are there, and says so."""
    written = config.get("path")
    if not written:
        return path.parent
    root = Path(str(written))
    candidates = [root] if root.is_absolute() else [path.parent / root, Path.cwd() / root]
    for candidate in candidates:
        if candidate.is_dir():
            if candidate is not candidates[0]:
                notes.append(f"`path: {written}` is read relative to the working folder: `{candidate}`")
            return candidate
    shown = dict.fromkeys(os.path.abspath(c) for c in candidates)
    looked = "" if root.is_absolute() else " (not " + " or ".join(f"`{c}`" for c in shown) + ")"
    if _splits_under(config, path.parent):
        notes.append(
            f"`path: {written}` does not exist here{looked}; the splits are relative to the YAML's "
            f"folder `{path.parent}`, so that is the root (set `path: .` to say so)"
        )
        return path.parent
    raise UsageError(
        f"`{path}`: `path: {written}` is not a folder{looked}, and its `train` / `val` entries are not "
        f"relative to the YAML's folder either: set `path` to the dataset root, the folder `train: "
        f"{_first_split(config)}` is relative to"
    )


def _split_entries(config: dict[str, Any]) -> list[str]:
    entries = []
    for key in SPLIT_KEYS:
        value = config.get(key)
        entries += [str(v) for v in (value if isinstance(value, list) else [value]) if v]
    return entries


def _splits_under(config: dict[str, Any], folder: Path) -> bool:
    """Whether every split entry exists, the relative ones under ``folder``."""
    entries = _split_entries(config)
    return bool(entries) and all((folder / e).exists() for e in entries)  # `/` keeps an absolute entry


def _first_split(config: dict[str, Any]) -> str:
    entries = _split_entries(config)
    return entries[0] if entries else "images/train"


def _split_images(
    config: dict[str, Any], split: str, root: Path, path: Path, images: Path | None, notes: list[str]
) -> list[Path]:
    if images is not None:
        return images_in(images)
    entry = config.get(split)
    if not entry:
        named = [k for k in SPLIT_KEYS if config.get(k)]
        raise UsageError(
            f"`{path}` has no `{split}` split; it names {', '.join(named) or 'none'}: {EXPECTED}"
        )
    found: list[Path] = []
    for item in entry if isinstance(entry, list) else [entry]:
        target = Path(str(item))
        target = target if target.is_absolute() else root / target
        if target.is_dir():
            found += images_in(target)
        elif target.is_file() and target.suffix == ".txt":
            found += _listed(target, root, notes)
        else:
            raise UsageError(
                f"`{path}`: the `{split}` entry `{item}` is neither a folder of images nor a .txt list ({target})"
            )
    return found


def _listed(listing: Path, root: Path, notes: list[str]) -> list[Path]:
    """The images a split's .txt lists, relative to the root; a path written on another machine (or
    in another letter case) is found the way ``ImageFinder`` finds it, and noted."""
    finder = ImageFinder([root, listing.parent])
    paths = []
    for line in listing.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            file, note = finder.find(line)
            if note:
                notes.append(f"`{line}`: {note}")
            paths.append(file.resolve() if not file.is_absolute() else file)
    notes += finder.notes()
    return paths


# -- labels --------------------------------------------------------------------------------------------


def label_file(image: Path) -> Path:
    """``images/train/a.jpg`` -> ``labels/train/a.txt`` (the last ``images`` folder), as ultralytics does."""
    parts = list(image.parts)
    for k in range(len(parts) - 2, -1, -1):
        if parts[k] == "images":
            parts[k] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _record(image: Path, root: Path) -> ImageRecord:
    return new_record(_relative(image, root), image, [], [], [])


def _relative(path: Path, root: Path) -> str:
    try:
        return os.path.relpath(path, root).replace(os.sep, "/")
    except ValueError:  # another drive on Windows
        return str(path)


def _read_labels(record: ImageRecord, root: Path, num_classes: int, problems: list[Problem]) -> bool:
    """Fill the record's boxes from its label file; False when it has none."""
    labels = label_file(record.file)
    try:
        text = labels.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(
            Problem(
                "HF316",
                f"label file `{labels}` cannot be read ({exc})",
                "rewrite it as UTF-8 text",
                record.image_id,
                file=str(record.file),
            )
        )
        return True
    name = _relative(labels, root)
    width, height = record.width, record.height
    boxes, categories, ids = [], [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        annotation_id = f"{name}:{number}"
        parsed = _parse_line(line, annotation_id, record, num_classes, problems)
        if parsed is None:
            continue
        label, (cx, cy, w, h) = parsed
        if max(cx, cy, w, h) > 1.0 + 1e-6:
            problems.append(_not_normalised(annotation_id, (cx, cy, w, h), record))
        if width is None or height is None:  # a missing or unreadable image: its own problem says so
            width_, height_ = 1, 1
        else:
            width_, height_ = width, height
        boxes.append(
            [(cx - w / 2) * width_, (cy - h / 2) * height_, (cx + w / 2) * width_, (cy + h / 2) * height_]
        )
        categories.append(label)
        ids.append(annotation_id)
    filled = new_record(record.image_id, record.file, boxes, categories, ids)
    record.boxes, record.category_ids, record.annotation_ids = (
        filled.boxes,
        filled.category_ids,
        filled.annotation_ids,
    )
    record.crowd = filled.crowd
    return True


def _parse_line(
    line: str, annotation_id: str, record: ImageRecord, num_classes: int, problems: list[Problem]
):
    fields = line.split()
    try:
        values = [float(v) for v in fields]
    except ValueError:
        problems.append(_malformed(annotation_id, line, "it holds something that is not a number", record))
        return None
    if len(values) < 5 or (len(values) > 5 and len(values) % 2 == 0):
        problems.append(
            _malformed(annotation_id, line, f"it has {len(values)} numbers, not `class cx cy w h`", record)
        )
        return None
    label = values[0]
    if label != int(label) or not 0 <= label < num_classes:
        problems.append(_bad_index(annotation_id, fields[0], num_classes, record))
        return None
    if len(values) > 5:  # a polygon x1 y1 x2 y2 ...: its extent
        xs, ys = values[1::2], values[2::2]
        x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
        return int(label), ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    return int(label), tuple(values[1:5])


def _malformed(annotation_id: str, line: str, why: str, record: ImageRecord) -> Problem:
    return Problem(
        "HF316",
        f"`{annotation_id}` does not parse: {why} (`{line.strip()[:60]}`)",
        "write one `class cx cy w h` line per box (class an integer index, the rest normalised to 0..1); `--fix OUT` drops the line",
        record.image_id,
        annotation_id,
        str(record.file),
    )


def _bad_index(annotation_id: str, label: str, num_classes: int, record: ImageRecord) -> Problem:
    return Problem(
        "HF307",
        f"`{annotation_id}` has class index {label}, but `names` lists {num_classes} classes (indices 0..{num_classes - 1})",
        "add the missing class to `names`, or correct the index (labels are 0-based: the first name is 0); `--fix OUT` drops the line",
        record.image_id,
        annotation_id,
        str(record.file),
    )


def _not_normalised(annotation_id: str, values: tuple[float, ...], record: ImageRecord) -> Problem:
    shown = " ".join(f"{v:g}" for v in values)
    size = f"{record.width}x{record.height}" if record.width else "its"
    return Problem(
        "HF314",
        f"`{annotation_id}` has `{shown}`: YOLO boxes are fractions of the image (0..1), these look like pixels",
        f"divide cx and w by the width and cy and h by the height of the {size} image; `--fix OUT` does it",
        record.image_id,
        annotation_id,
        str(record.file),
    )


def _shared_label_files(records: list[ImageRecord], root: Path, problems: list[Problem]) -> None:
    """``a.jpg`` and ``a.png`` in one folder read the same ``a.txt``: the boxes of one are the other's."""
    owners: dict[Path, ImageRecord] = {}
    for record in records:
        labels = label_file(record.file)
        first = owners.setdefault(labels, record)
        if first is not record:
            problems.append(
                Problem(
                    "HF313",
                    f"images `{first.image_id}` and `{record.image_id}` share the label file `{_relative(labels, root)}`",
                    "rename one of the two images (and give it its own label file) or delete the duplicate",
                    record.image_id,
                    file=str(record.file),
                )
            )


def _labels_without_image(image_paths: list[Path], root: Path, problems: list[Problem]) -> None:
    """Label files with boxes whose image is gone: boxes nothing trains on, usually a deleted image."""
    image_folders = {label_file(p).parent: p.parent for p in image_paths}
    for labels_folder, images_folder in sorted(image_folders.items()):
        if not labels_folder.is_dir():
            continue
        stems = {os.path.splitext(n)[0] for n in os.listdir(images_folder) if is_image_file(n)}
        for name in sorted(os.listdir(labels_folder)):
            path = labels_folder / name
            if name.endswith(".txt") and name[:-4] not in stems and _has_boxes(path):
                problems.append(
                    Problem(
                        "HF305",
                        f"label file `{_relative(path, root)}` has no image (no `{name[:-4]}.*` in `{_relative(images_folder, root)}`)",
                        "restore its image, or delete the label file; `--fix OUT` leaves it out",
                        annotation_id=_relative(path, root),
                    )
                )


def _has_boxes(path: Path) -> bool:
    try:
        return any(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError):
        return False
