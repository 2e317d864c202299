"""Where an annotation's image file is, and the one step every reader shares: reading image headers.

A dataset names its images relative to some folder (COCO's ``file_name``, VOC's ``<filename>``, a
CSV's ``image_path``). ``ImageFinder`` tries the folders a format allows, in order, and when the
named file is missing but exactly one file with the same stem and another image suffix sits where it
should (``OSBS_029.tif`` named, ``OSBS_029.png`` present) it uses that twin and says so in a note.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from headfit.datasets.headers import IMAGE_SUFFIXES, ImageHeader, is_image_file, read_header
from headfit.datasets.problems import Id
from headfit.datasets.records import ImageRecord
from headfit.errors import UsageError


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a dataset is built: every object made is kept, and each
    collection would walk the whole parsed JSON again (it halves the time of reading a COCO file).

    On the way out the objects made go straight to the oldest generation (``freeze`` then
    ``unfreeze`` moves them there without a traversal): enabling the collector would otherwise walk
    all 1.2 million objects of a 100,000-annotation file in its next young collection (50 ms)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


class Listings:
    """``os.listdir`` of each folder, once: image files by lowercase stem, and every name."""

    def __init__(self) -> None:
        self._names: dict[str, frozenset[str]] = {}
        self._stems: dict[str, dict[str, list[str]]] = {}

    def names(self, folder: str) -> frozenset[str]:
        if folder not in self._names:
            try:
                self._names[folder] = frozenset(os.listdir(folder))
            except OSError:
                self._names[folder] = frozenset()
        return self._names[folder]

    def holds(self, path: str) -> bool:
        """Whether the file ``path`` is in its folder's listing."""
        folder, name = os.path.split(path)
        return name in self.names(folder)

    def image_stems(self, folder: str) -> dict[str, list[str]]:
        if folder not in self._stems:
            stems: dict[str, list[str]] = {}
            for name in sorted(self.names(folder)):
                if name.lower().endswith(IMAGE_SUFFIXES):
                    stems.setdefault(name.rpartition(".")[0].lower(), []).append(name)
            self._stems[folder] = stems
        return self._stems[folder]


class ImageFinder:
    """Resolve image names against candidate folders (the folder of the last hit is tried first)."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = [str(f) for f in dict.fromkeys(folders)]
        self.listings = Listings()
        self._preferred: str | None = None
        self._preferred_names: frozenset[str] = frozenset()  # the listing of that folder
        self._preferred_path = Path()

    def find(self, name: str) -> tuple[Path, str | None]:
        """The path of image ``name`` and a note when a twin stood in for a missing file.

        A file is looked up in its folder's listing (one ``os.listdir`` per folder), not with a
        ``stat`` per image."""
        name = name.replace("\\", "/")
        if self._preferred is not None:  # the usual case: one folder for all (join keeps an absolute name)
            path = os.path.join(self._preferred, name)
            if name in self._preferred_names if "/" not in name else self.listings.holds(path):
                return self._preferred_path.joinpath(name), None  # 40% cheaper than Path(path)
        if os.path.isabs(name):
            return self._or_twin(name, [os.path.dirname(name)])
        folders = [self._preferred] if self._preferred is not None else []
        folders += [f for f in self.folders if f != self._preferred]
        for folder in folders:
            path = os.path.join(folder, name)
            if self.listings.holds(path):
                self._preferred, self._preferred_names = folder, self.listings.names(folder)
                self._preferred_path = Path(folder)
                return Path(path), None
        first = os.path.join(folders[0], name) if folders else name
        return self._or_twin(first, [os.path.dirname(os.path.join(f, name)) for f in folders])

    def _or_twin(self, path: str, folders: Iterable[str]) -> tuple[Path, str | None]:
        if os.path.exists(path):
            return Path(path), None
        base = os.path.basename(path)
        stem = os.path.splitext(base)[0].lower()
        for folder in folders:
            twins = [t for t in self.listings.image_stems(folder).get(stem, []) if t.lower() != base.lower()]
            if len(twins) == 1:
                note = f"`{base}` is missing; `{twins[0]}` beside it has the same stem, so it was used"
                return Path(folder, twins[0]), note
        return Path(path), None


def read_headers(paths: Sequence[Path]) -> list[ImageHeader]:
    """The header of every file, in order (one lazy PIL open each)."""
    return [read_header(p) for p in paths]


def attach_headers(records: Sequence[ImageRecord], source: Path, hint: str) -> None:
    """Each record's header and real size (EXIF orientation applied), read from its file."""
    headers = read_headers([r.file for r in records])
    require_some_found(headers, [r.file for r in records], source, hint)
    for record, header in zip(records, headers, strict=True):
        record.header = header
        if header.size is not None:
            record.width, record.height = header.size


def new_record(
    image_id: Id,
    file: Path,
    boxes: Sequence[Sequence[float]],
    category_ids: Sequence[Id],
    annotation_ids: Sequence[Id],
    declared_size: tuple[int, int] | None = None,
) -> ImageRecord:
    """A record from plain lists (the YOLO, VOC and CSV readers); its size comes with its header."""
    return ImageRecord(
        image_id,
        file,
        None,
        None,
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        category_ids=np.asarray(
            category_ids, dtype=object if any(isinstance(c, str) for c in category_ids) else np.int64
        ),
        crowd=np.zeros(len(boxes), dtype=bool),
        annotation_ids=list(annotation_ids),
        declared_size=declared_size,
    )


def require_some_found(
    headers: Sequence[ImageHeader], paths: Sequence[Path], source: Path, hint: str
) -> None:
    """One paragraph instead of N 'missing file' problems when not a single image was found."""
    if not headers or any(h.status != "missing" for h in headers):
        return
    folders = sorted({str(p.parent) for p in paths})
    shown = ", ".join(f"`{f}`" for f in folders[:3]) + (
        f" and {len(folders) - 3} more" if len(folders) > 3 else ""
    )
    raise UsageError(
        f"none of the {len(paths):,} images `{source}` names exists (looked in {shown}, e.g. "
        f"`{paths[0]}`): {hint}"
    )


def images_in(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted; a folder with none is a UsageError."""
    require_image_folder(folder)
    return sorted(p for p in folder.rglob("*") if is_image_file(p.name) and p.is_file())


def require_image_folder(folder: Path) -> None:
    """A folder that holds at least one image file (stops at the first one found)."""
    if not folder.is_dir():
        raise UsageError(f"`{folder}` is not a folder: give the folder that holds the images")
    for _, _, names in os.walk(folder):
        if any(is_image_file(n) for n in names):
            return
    raise UsageError(
        f"`{folder}` holds no images (no .jpg, .png, .tif, .bmp or .webp files, also in its subfolders): "
        "give the folder the annotations' file names are relative to"
    )
