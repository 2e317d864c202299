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
        self._lower: dict[str, dict[str, list[str]]] = {}

    def names(self, folder: str) -> frozenset[str]:
        if folder not in self._names:
            try:
                self._names[folder] = frozenset(os.listdir(folder))
            except OSError:
                self._names[folder] = frozenset()
        return self._names[folder]

    def by_lowercase(self, folder: str) -> dict[str, list[str]]:
        """The folder's names by their lowercase form (to find ``a.jpg`` named as ``a.JPG``)."""
        if folder not in self._lower:
            lower: dict[str, list[str]] = {}
            for name in self.names(folder):
                lower.setdefault(name.lower(), []).append(name)
            self._lower[folder] = lower
        return self._lower[folder]

    def holds(self, path: str) -> bool:
        """Whether the file ``path`` is in its folder's listing."""
        folder, name = os.path.split(path)
        return name in self.names(folder)

    def image_stems(self, folder: str) -> dict[str, list[str]]:
        if folder not in self._stems:
            stems: dict[str, list[str]] = {}
            for name in sorted(self.names(folder)):
                lower = name.lower()
                if lower.endswith(IMAGE_SUFFIXES):
                    stems.setdefault(lower.rpartition(".")[0], []).append(name)
            self._stems[folder] = stems
        return self._stems[folder]


class ImageFinder:
    """Resolve image names against candidate folders (the folder of the last hit is tried first).

    A name that is not where it says is looked for the ways real datasets lose their images, and
    each way that finds it is noted once for the whole dataset (``notes()``): a letter-case
    difference (``a.JPG`` named, ``a.jpg`` on disk), a folder prefix that is not here (a
    ``train2017/`` prefix, or an absolute path from another machine: the longest tail of the name
    that exists under a candidate folder is used), a file one or two subfolders below the first
    folder (the only one of its name there), a same-stem twin (a per-image note)."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = [str(f) for f in dict.fromkeys(folders)]
        self.listings = Listings()
        self._preferred: str | None = None
        self._preferred_names: frozenset[str] = frozenset()  # the listing of that folder
        self._preferred_path = Path()
        self.recased: list[tuple[str, str]] = []  # (name as written, file used)
        self.rebased: list[tuple[str, str]] = []
        self.moved: list[tuple[str, str]] = []
        self.ambiguous: list[tuple[str, list[str]]] = []  # (name, the files of that name below)
        self._index: dict[str, set[str]] | None = None  # image files below the folders, by lowercase name
        self._rebase: tuple[str, str] | None = None  # (a foreign name's folder as written, the folder used)

    def find(self, name: str) -> tuple[Path, str | None]:
        """The path of image ``name`` and a note when a twin stood in for a missing file.

        A file is looked up in its folder's listing (one ``os.listdir`` per folder), not with a
        ``stat`` per image."""
        name = name.replace("\\", "/")
        if self._preferred is not None:  # the usual case: one folder for all (join keeps an absolute name)
            path = os.path.join(self._preferred, name)
            if name in self._preferred_names if "/" not in name else self.listings.holds(path):
                return self._preferred_path.joinpath(name), None  # 40% cheaper than Path(path)
        if self._rebase is not None:  # the folder the last foreign name of this folder was found in
            written, found = self._rebase
            head, _, base = name.rpartition("/")
            if head == written and self.listings.holds(path := os.path.join(found, base)):
                self.rebased.append((name, path))
                return Path(path), None
        if _absolute(name):
            if self.listings.holds(name):
                return Path(name), None
            return self._elsewhere(name, name, [os.path.dirname(name)])
        folders = [self._preferred] if self._preferred is not None else []
        folders += [f for f in self.folders if f != self._preferred]
        for folder in folders:
            path = os.path.join(folder, name)
            if self.listings.holds(path):
                self._preferred, self._preferred_names = folder, self.listings.names(folder)
                self._preferred_path = Path(folder)
                return Path(path), None
        first = os.path.join(folders[0], name) if folders else name
        return self._elsewhere(name, first, [os.path.dirname(os.path.join(f, name)) for f in folders])

    def notes(self) -> list[str]:
        """One note per way names were resolved that are not written as the files are."""
        notes = []
        if self.recased:
            notes.append(
                f"{_count(self.recased, 'file name', 'differs', 'differ')} from the file only in letter case ({_pairs(self.recased)}): "
                "the files were used; a case-sensitive file system (Linux) finds no file by the names as written, "
                "and `--fix OUT` writes the files' real names"
            )
        if self.rebased:
            notes.append(
                f"{_count(self.rebased, 'file name', 'carries', 'carry')} a folder that is not here ({_pairs(self.rebased)}): "
                "each was found by the longest end of its path that exists under the folders searched "
                f"({', '.join(f'`{f}`' for f in self.folders[:3])}); `--fix OUT` writes the paths that resolve here"
            )
        if self.moved:
            notes.append(
                f"{_count(self.moved, 'image', 'is', 'are')} in a subfolder of where the name says ({_pairs(self.moved)}): "
                "each was found by its name, the only file of that name below the folders searched; "
                "pass `--images DIR` with the folder they are in, or `--fix OUT` writes the paths that resolve here"
            )
        if self.ambiguous:
            name, files = self.ambiguous[0]
            shown = ", ".join(f"`{f}`" for f in files[:3]) + (", ..." if len(files) > 3 else "")
            notes.append(
                f"{_count(self.ambiguous, 'missing image', 'has', 'have')} more than one file of its name below "
                f"`{self.folders[0]}` (`{name}`: {shown}), so none was guessed: pass `--images DIR` with the "
                "folder this dataset's images are in"
            )
        return notes

    def _elsewhere(self, name: str, path: str, folders: list[str]) -> tuple[Path, str | None]:
        """A name not in its folder's listing: the same name in another letter case (noted also where
        the file system ignores case: the data would not read on one that does not), a twin, a tail of
        it, the only file of its name below the first folder."""
        other = self._other_case(path)
        if other is not None:
            self.recased.append((name, os.path.basename(other)))
            return Path(other), None
        if os.path.exists(path):  # what a listing does not show: a folder named `..`, a mount
            return Path(path), None
        twin = self._twin(path, folders)
        if twin[1] is not None:
            return twin
        tail = self._by_tail(name)
        if tail is not None:
            self.rebased.append((name, tail))
            self._rebase = (name.rpartition("/")[0], os.path.dirname(tail))
            return Path(tail), None
        below = self._below(name)
        if below is not None:
            self.moved.append((name, below))
            return Path(below), None
        return Path(path), None

    def _below(self, name: str) -> str | None:
        """The one image file named like ``name`` in the subfolders of the folders searched (None when
        there is none, or more than one: ``train/a.jpg`` and ``val/a.jpg`` cannot be told apart)."""
        if self._index is None:  # below the first folder only: the others (a parent) hold other datasets
            self._index = _index_below(self.folders[:1])
        found = self._index.get(os.path.basename(name).lower(), set())
        if len(found) > 1:
            self.ambiguous.append((name, sorted(found)))
        return next(iter(found)) if len(found) == 1 else None

    def _other_case(self, path: str) -> str | None:
        folder, base = os.path.split(path)
        matches = self.listings.by_lowercase(folder).get(base.lower(), [])
        return os.path.join(folder, matches[0]) if len(matches) == 1 else None

    def _twin(self, path: str, folders: Iterable[str]) -> tuple[Path, str | None]:
        base = os.path.basename(path)
        stem = os.path.splitext(base)[0].lower()
        for folder in folders:
            twins = [t for t in self.listings.image_stems(folder).get(stem, []) if t.lower() != base.lower()]
            if len(twins) == 1:
                note = f"`{base}` is missing; `{twins[0]}` beside it has the same stem, so it was used"
                return Path(folder, twins[0]), note
        return Path(path), None

    def _by_tail(self, name: str) -> str | None:
        """The longest proper tail of ``name`` (``a/b/c.jpg``: ``b/c.jpg``, then ``c.jpg``) that is a file
        under one of the folders (its last part in any letter case)."""
        parts = [p for p in name.split("/") if p not in ("", ".") and not p.endswith(":")]
        for k in range(1 if not _absolute(name) else 0, len(parts)):
            tail = "/".join(parts[k:])
            for folder in [self._preferred, *self.folders] if self._preferred else self.folders:
                path = os.path.join(folder, tail)
                if self.listings.holds(path):
                    return path
                other = self._other_case(path)
                if other is not None:
                    return other
        return None


INDEX_DEPTH = 2  # subfolder levels searched for a file named nowhere else
INDEX_BUDGET = 200_000  # entries looked at, at most: a misplaced dataset must not walk a home folder


def _index_below(folders: Sequence[str]) -> dict[str, set[str]]:
    """Image files in the subfolders of ``folders`` (``INDEX_DEPTH`` levels), by lowercase name."""
    index: dict[str, set[str]] = {}
    budget = INDEX_BUDGET
    level = [f for f in folders if os.path.isdir(f)]
    for depth in range(INDEX_DEPTH + 1):
        below = []
        for folder in level:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            budget -= len(entries)
            if budget < 0:
                return index
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    below.append(entry.path)
                elif depth and is_image_file(entry.name):  # depth 0: the folders themselves, searched already
                    index.setdefault(entry.name.lower(), set()).add(os.path.normpath(entry.path))
        level = below
    return index


def _absolute(name: str) -> bool:
    """An absolute path here, or one written on Windows (``C:/data/a.jpg``) read anywhere."""
    return os.path.isabs(name) or (len(name) > 2 and name[1] == ":" and name[2] == "/")


def _count(items: list, noun: str, one: str, many: str) -> str:
    """``1 file name differs`` / ``2 file names differ``."""
    return f"{len(items):,} {noun} {one}" if len(items) == 1 else f"{len(items):,} {noun}s {many}"


def _pairs(pairs: list[tuple[str, str]], shown: int = 2) -> str:
    text = ", ".join(f"`{a}` -> `{b}`" for a, b in pairs[:shown])
    return text + (f" and {len(pairs) - shown:,} more" if len(pairs) > shown else "")


def read_headers(paths: Sequence[Path]) -> list[ImageHeader]:
    """The header of every file, in order (PNG and JPEG parsed directly, the rest by a lazy PIL open)."""
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
