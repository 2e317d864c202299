"""What ``headfit evaluate`` and ``headfit predict`` do, as data: load, match classes, infer, measure.

``evaluate_checkpoint`` returns an ``EvaluateRun`` (the report and what was decided on the way:
maxDets raised, classes matched by name); ``predict_files`` returns a ``PredictRun`` (one record per
detection, COCO results style, and the files written). The CLI renders them (``render.py``).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headfit.datasets.records import ClassMap, DetectionDataset
from headfit.errors import UsageError
from headfit.evaluation.coco import (
    COCO_MAX_DETS,
    Detections,
    EvalReport,
    detections_per_image_for,
    evaluate_detections,
    max_dets_for,
    most_boxes,
)
from headfit.files import atomic_write, atomic_write_text

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
PREDICT_CONF = 0.25


@dataclass
class EvaluateRun:
    checkpoint: Path
    data: Path
    report: EvalReport
    boxes: int  # ground-truth boxes of the data, crowd regions included
    device: str
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The contract's ``evaluate --json`` document, with where it came from and the notes."""
        return {
            **self.report.to_dict(),
            "checkpoint": str(self.checkpoint),
            "data": str(self.data),
            "seconds": round(self.seconds, 3),
            "notes": list(self.notes),
        }


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    *,
    images: str | Path | None = None,
    split: str | None = None,
    batch_size: int = 4,
    device: str = "cpu",
    workers: int = 0,
    trust_code: bool = False,
) -> tuple[EvaluateRun, list[Detections], DetectionDataset]:
    """COCO box mAP of the checkpoint on DATA; also returns the detections and the (class-aligned)
    dataset, for plots."""
    from headfit.checkpoint import load_detector
    from headfit.datasets import read, splits
    from headfit.evaluation.inference import detect, resolve_device

    device = resolve_device(device)
    loaded = load_detector(checkpoint, trust_code=trust_code, device=device)
    notes: list[str] = []
    if split is None and "val" in splits(data):
        split = "val"
        notes.append("evaluated on the data's `val` split (`--split` picks another)")
    dataset = read(data, images=images, split=split)
    if not dataset.images:
        raise UsageError(f"the data `{data}` has no images to evaluate on")
    dataset = dataclasses.replace(dataset, classes=aligned_classes(dataset.classes, loaded, notes))
    if dataset.problems:
        notes.append(
            f"reading the data found {len(dataset.problems)} problem(s) it left out of the evaluation; "
            f"`headfit data check {data}` lists them"
        )
    max_dets = max_dets_for(dataset)
    per_image = detections_per_image_for(dataset)
    if per_image > COCO_MAX_DETS:
        notes.append(
            _dense_note(dataset, max_dets, per_image, _raise_detections_per_image(loaded.model, per_image))
        )
    started = time.perf_counter()
    detections = detect(loaded.model, dataset, batch_size=batch_size, device=device, workers=workers)
    report = evaluate_detections(dataset, detections, max_dets=max_dets)
    run = EvaluateRun(
        checkpoint=loaded.path,
        data=Path(data),
        report=report,
        boxes=dataset.num_annotations,
        device=device,
        seconds=time.perf_counter() - started,
        notes=notes,
    )
    return run, detections, dataset


def aligned_classes(data: ClassMap, loaded: Any, notes: list[str]) -> ClassMap:
    """The data's classes in the checkpoint's label order (the model's labels index this), matched
    by name; refused when the names differ. A checkpoint without class names takes the data's
    classes in their order, and a note says so."""
    model = loaded.classes
    if not loaded.class_map_known:
        if len(model) != len(data):
            raise UsageError(
                f"the checkpoint `{loaded.path}` predicts {len(model)} classes and has no class names, but the "
                f"data has {len(data)} ({', '.join(data.names)}); evaluate it on data with {len(model)} classes"
            )
        notes.append(
            f"the checkpoint has no class names: its labels 0..{len(data) - 1} are taken as the data's classes "
            f"in order ({', '.join(data.names)})"
        )
        return data
    if Counter(model.names) != Counter(data.names) or len(set(data.names)) != len(data.names):
        raise UsageError(
            f"the data's classes do not match the checkpoint's: `{loaded.path}` was trained on {len(model)} "
            f"classes ({_listed(model.names)}) but the data has {len(data)} ({_listed(data.names)}). "
            "Evaluate on data with the classes the model was trained on (the same names), or train a model "
            "on this data with `headfit train MODEL --data DATA`"
        )
    by_name = dict(zip(data.names, data.ids, strict=True))
    if model.names != data.names:
        notes.append(
            f"the data lists its classes in another order ({_listed(data.names)}); matched to the "
            f"checkpoint's ({_listed(model.names)}) by name"
        )
    return ClassMap(ids=[by_name[name] for name in model.names], names=list(model.names))


def _listed(names: Sequence[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _raise_detections_per_image(model: Any, count: int) -> int | None:
    """Raise the model's cap on detections per image to ``count``; returns the cap it had (None when
    the family knows no such setting)."""
    from headfit.families import family_for

    family = family_for(model)
    before = family.detections_per_image(model)
    if before is not None and before < count:
        family.set_detections_per_image(model, count)
    return before


def _dense_note(dataset: DetectionDataset, max_dets: int, per_image: int, before: int | None) -> str:
    most, most_one_class = most_boxes(dataset), most_boxes(dataset, per_class=True)
    if before is None:
        model = "the model has no detections-per-image cap headfit can raise"
    elif before < per_image:
        model = f"the model's detections per image raised from {before} to {per_image} to match"
    else:
        model = f"the model keeps up to {before} detections per image already"
    metric = (
        f"COCO's maxDets raised from 100 to {max_dets} (the most of one class in an image: {most_one_class})"
        if max_dets > COCO_MAX_DETS
        else f"COCO's maxDets stays 100 (it counts per class; the most of one class in an image: {most_one_class})"
    )
    return f"the data has images with up to {most} boxes, more than COCO's 100 detections per image: {metric}; {model}"


@dataclass
class PredictRun:
    checkpoint: Path
    records: list[dict[str, Any]]  # COCO results: file, image_id, category_id, bbox [x, y, w, h], score
    images: list[Path]
    drawn: list[Path]  # annotated images written
    results: Path | None  # the COCO results JSON written
    out: Path | None
    classes: ClassMap
    conf: float
    device: str
    seconds: float

    def counts(self, image: Path) -> Counter:
        """Detections per class name on one image."""
        names = dict(zip(self.classes.ids, self.classes.names, strict=True))
        return Counter(names[r["category_id"]] for r in self.records if r["file"] == str(image))


def predict_files(
    checkpoint: str | Path,
    sources: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    conf: float = PREDICT_CONF,
    batch_size: int = 4,
    device: str = "cpu",
    workers: int = 0,
    trust_code: bool = False,
    draw: bool = True,
) -> PredictRun:
    """Run the checkpoint on image files and folders; write annotated images and ``predictions.json``
    into ``out`` (a fresh ``runs/predict/expN`` by default)."""
    from headfit.checkpoint import load_detector
    from headfit.evaluation.inference import detect_files, resolve_device

    if not 0.0 <= conf <= 1.0:
        raise UsageError(f"--conf is a score between 0 and 1, got {conf}")
    images = image_files(sources)
    device = resolve_device(device)
    loaded = load_detector(checkpoint, trust_code=trust_code, device=device)
    started = time.perf_counter()
    files = [(image_id_of(path), path) for path in images]
    detections = detect_files(
        loaded.model,
        files,
        loaded.classes,
        batch_size=batch_size,
        device=device,
        score_threshold=conf,
        workers=workers,
    )
    records = [
        record
        for (_, path), found in zip(files, detections, strict=True)
        for record in result_records(path, found)
    ]
    folder = fresh_folder(Path(out) if out is not None else Path("runs/predict/exp"), exact=out is not None)
    drawn = _draw_all(images, detections, loaded.classes, folder) if draw else []
    results = _write_results(folder / "predictions.json", records)
    return PredictRun(
        checkpoint=loaded.path,
        records=records,
        images=images,
        drawn=drawn,
        results=results,
        out=folder,
        classes=loaded.classes,
        conf=conf,
        device=device,
        seconds=time.perf_counter() - started,
    )


def image_files(sources: Sequence[str | Path]) -> list[Path]:
    """The images named: files as given, folders by their image files (sorted, not recursive)."""
    if not sources:
        raise UsageError("give at least one image or folder of images to predict on")
    found: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            inside = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not inside:
                raise UsageError(
                    f"the folder `{source}` holds no image files ({', '.join(IMAGE_SUFFIXES)}); "
                    "give a folder of images or the image files themselves"
                )
            found += inside
        elif source.is_file():
            found.append(source)
        else:
            raise UsageError(f"`{source}` does not exist: give image files or folders of images")
    return list(dict.fromkeys(found))  # the same file named twice is predicted once


def image_id_of(path: Path) -> int | str:
    """A COCO results ``image_id`` for a file: its stem, as an int when it is one (``000123.jpg`` -> 123)."""
    return int(path.stem) if path.stem.isdigit() else path.stem


def result_records(path: Path, found: Detections) -> list[dict[str, Any]]:
    """COCO result records of one image's detections (boxes as ``[x, y, w, h]``, rounded to 0.01 px)."""
    return [
        {
            "file": str(path),
            "image_id": found.image_id,
            "category_id": category,
            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
            "score": round(score, 5),
        }
        for (x1, y1, x2, y2), score, category in zip(
            found.boxes.tolist(), found.scores.tolist(), found.category_ids.tolist(), strict=True
        )
    ]


def fresh_folder(base: Path, *, exact: bool) -> Path:
    """``base`` itself when asked for exactly (it may exist); otherwise ``base``, ``base2``, ... the
    first that does not exist, so no earlier run is overwritten."""
    if exact:
        if base.exists() and not base.is_dir():
            raise UsageError(f"--out `{base}` is a file; give a folder to write the predictions into")
        base.mkdir(parents=True, exist_ok=True)
        return base
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}{n}")
    candidate.mkdir(parents=True)
    return candidate


def _draw_all(
    images: list[Path], detections: list[Detections], classes: ClassMap, folder: Path
) -> list[Path]:
    from headfit.datasets import decode_image
    from headfit.evaluation.plots import draw_detections

    written, taken = [], set()
    for path, found in zip(images, detections, strict=True):
        image = draw_detections(decode_image(path), found.boxes, found.scores, found.category_ids, classes)
        target = _unique(
            folder / f"{path.stem}{'.jpg' if path.suffix.lower() in ('.jpg', '.jpeg') else '.png'}", taken
        )
        _write_image(image, target)
        written.append(target)
    return written


def _unique(path: Path, taken: set[Path]) -> Path:
    """``path``, or ``stem_2``, ``stem_3``... when two sources share a file name."""
    candidate, n = path, 1
    while candidate in taken:
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    taken.add(candidate)
    return candidate


def _write_image(image: Any, path: Path) -> None:
    from torchvision.io import encode_jpeg, encode_png

    encoded = encode_jpeg(image.contiguous(), quality=92) if path.suffix == ".jpg" else encode_png(image.contiguous())
    atomic_write(path, lambda file: file.write(encoded.numpy().tobytes()))


def _write_results(path: Path, records: list[dict[str, Any]]) -> Path:
    import json

    atomic_write_text(path, json.dumps(records, indent=1) + "\n")
    return path
