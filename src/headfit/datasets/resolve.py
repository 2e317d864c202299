"""Where an annotation's image file is, and the one step every reader shares: reading image headers.

A dataset names its images relative to some folder (COCO's ``file_name``, VOC's ``<filename>``, a
CSV's ``image_path``). ``ImageFinder`` tries the folders a format allows, in order, and when the
named file is missing but exactly one file with the same stem and another image suffix sits where it
should (``OSBS_029.tif`` named, ``OSBS_029.png`` present) it uses that twin and says so in a note.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from headfit.datasets.headers import ImageHeader, is_image_file, read_header
from headfit.datasets.problems import Id
from headfit.datasets.records import ImageRecord
from headfit.errors import UsageError


class ImageFinder:
    """Resolve image names against candidate folders (first hit wins; the first folder by default)."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = [Path(f) for f in dict.fromkeys(folders)]
        self._listings: dict[Path, dict[str, list[str]]] = {}
        self._preferred: Path | None = None

    def find(self, name: str) -> tuple[Path, str | None]:
        """The path of image ``name`` and a note when a twin stood in for a missing file."""
        named = Path(name.replace("\\", "/"))
        if named.is_absolute():
            return self._or_twin(named, [named.parent])
        folders = [self._preferred] if self._preferred is not None else []
        folders += [f for f in self.folders if f != self._preferred]
        for folder in folders:
            path = folder / named
            if os.path.exists(path):
                self._preferred = folder
                return path, None
        return self._or_twin(folders[0] / named if folders else named, [f / named.parent for f in folders])

    def _or_twin(self, path: Path, folders: Iterable[Path]) -> tuple[Path, str | None]:
        if os.path.exists(path):
            return path, None
        for folder in folders:
            twins = self._listing(folder).get(path.stem.lower(), [])
            twins = [t for t in twins if t.lower() != path.name.lower()]
            if len(twins) == 1:
                return folder / twins[
                    0
                ], f"`{path.name}` is missing; `{twins[0]}` beside it has the same stem, so it was used"
        return path, None

    def _listing(self, folder: Path) -> dict[str, list[str]]:
        """Image files in ``folder`` by lowercase stem (listed once per folder)."""
        if folder not in self._listings:
            stems: dict[str, list[str]] = {}
            try:
                names = os.listdir(folder)
            except OSError:
                names = []
            for name in names:
                if is_image_file(name):
                    stems.setdefault(os.path.splitext(name)[0].lower(), []).append(name)
            self._listings[folder] = stems
        return self._listings[folder]


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
