"""``read(path)``: which format a path is, and the reader for it.

A file is read by its suffix (``.json`` COCO, ``.yaml`` YOLO, ``.xml`` one VOC annotation, ``.csv``
the plain ``image_path,xmin,ymin,xmax,ymax,label`` table). A folder by what it holds: ``Annotations/``
(Pascal VOC), a ``data.yaml`` (YOLO), ``*.xml`` files beside their images (VOC without its folders),
or COCO JSON files (``train.json`` / ``val.json``, as ``headfit data synth`` writes; ``split`` picks).
"""

from __future__ import annotations

from pathlib import Path

from headfit.datasets.records import DetectionDataset
from headfit.datasets.resolve import gc_paused
from headfit.errors import UsageError

FORMATS = (
    "a COCO instances .json, a YOLO data.yaml, a Pascal VOC folder (Annotations/, JPEGImages/) or .xml "
    "file, or a CSV with the columns image_path,xmin,ymin,xmax,ymax,label"
)


def read(path: Path | str, *, images: Path | str | None = None, split: str | None = None) -> DetectionDataset:
    """Read a detection dataset in its own format into the one in-memory form (``records.py``).

    Nothing is dropped: what cannot be represented (an annotation naming no image, a line that does
    not parse) is on ``dataset.problems``; ``lint(dataset)`` finds the rest.
    """
    path = Path(path)
    images = Path(images) if images is not None else None
    if not path.exists():
        raise UsageError(f"`{path}` does not exist: give {FORMATS}")
    kind, target = _detect(path, split)
    with gc_paused():
        return _read(kind, target, images, split)


def _read(kind: str, target: Path, images: Path | None, split: str | None) -> DetectionDataset:
    if kind == "coco":
        from headfit.datasets.coco import read_coco

        return read_coco(target, images, split)
    if kind == "yolo":
        from headfit.datasets.yolo import read_yolo

        return read_yolo(target, images, split)
    if kind == "voc":
        from headfit.datasets.voc import read_voc

        return read_voc(target, images, split)
    from headfit.datasets.csvfile import read_csv

    return read_csv(target, images, split)


def splits(path: Path | str) -> list[str]:
    """The splits a source names itself: YOLO's keys, VOC's ``ImageSets/Main`` files, a folder's COCO
    JSONs; [] for one COCO JSON or CSV."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"`{path}` does not exist: give {FORMATS}")
    kind, target = _detect(path, None, choose=False)
    if kind == "yolo":
        from headfit.datasets.yolo import yolo_splits

        return yolo_splits(target)
    if kind == "voc":
        from headfit.datasets.voc import voc_splits

        return voc_splits(target)
    if kind == "coco-folder":
        return [p.stem for p in _coco_files(path)]
    return []


def _detect(path: Path, split: str | None, choose: bool = True) -> tuple[str, Path]:
    if path.is_file():
        suffix = path.suffix.lower()
        kinds = {".json": "coco", ".yaml": "yolo", ".yml": "yolo", ".xml": "voc", ".csv": "csv"}
        if suffix not in kinds:
            raise UsageError(
                f"`{path}` is a {suffix or 'suffix-less'} file headfit cannot read as a dataset: give {FORMATS}"
            )
        return kinds[suffix], path
    if (path / "Annotations").is_dir():
        return "voc", path
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (path / name).is_file():
            return "yolo", path / name
    if any(path.glob("*.xml")):
        return "voc", path
    coco = _coco_files(path)
    if coco and not choose:
        return "coco-folder", path
    if coco:
        return "coco", _pick_json(path, coco, split)
    csvs = sorted(path.glob("*.csv"))
    if len(csvs) == 1:
        return "csv", csvs[0]
    raise UsageError(f"`{path}` is a folder without annotations headfit recognises: give {FORMATS}")


def _coco_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


def _pick_json(folder: Path, files: list[Path], split: str | None) -> Path:
    by_stem = {p.stem: p for p in files}
    if split is not None:
        for stem in (split, f"instances_{split}"):
            if stem in by_stem:
                return by_stem[stem]
        raise UsageError(f"`{folder}` has no `{split}.json`; its JSON files: {', '.join(sorted(by_stem))}")
    if len(files) == 1:
        return files[0]
    if "train" in by_stem:
        return by_stem["train"]
    raise UsageError(
        f"`{folder}` holds {len(files)} JSON files ({', '.join(sorted(by_stem))}): name one, or pick one with --split"
    )
