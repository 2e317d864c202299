"""Tiny datasets on disk for the data tests: real image files, annotations in each format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def image(path: Path, width: int = 64, height: int = 48, mode: str = "RGB", **save: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(width * 1000 + height)
    if mode == "I;16":
        Image.fromarray(rng.integers(0, 65535, (height, width), dtype=np.uint16)).save(path, **save)
    else:
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).convert(mode).save(
            path, **save
        )
    return path


def coco(
    folder: Path,
    images: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
    categories: list[dict[str, Any]] | None = None,
    name: str = "data.json",
    write_images: bool = True,
) -> Path:
    """A COCO file in ``folder``; each image entry's file is written at its declared size."""
    folder.mkdir(parents=True, exist_ok=True)
    if write_images:
        for entry in images:
            if not (folder / entry["file_name"]).exists():
                image(folder / entry["file_name"], entry.get("width", 64), entry.get("height", 48))
    for k, ann in enumerate(annotations, 1):
        ann.setdefault("id", k)
        ann.setdefault("category_id", 1)
        ann.setdefault("iscrowd", 0)
    document = {
        "images": images,
        "annotations": annotations,
        "categories": categories or [{"id": 1, "name": "cat"}],
    }
    path = folder / name
    path.write_text(json.dumps(document))
    return path


def one_image_coco(
    folder: Path, boxes: list[list[float]], width: int = 64, height: int = 48, **ann: Any
) -> Path:
    images = [{"id": 1, "file_name": "a.png", "width": width, "height": height}]
    return coco(folder, images, [{"image_id": 1, "bbox": b, **ann} for b in boxes])


def yolo(folder: Path, labels: dict[str, str], names: list[str], size: tuple[int, int] = (64, 48)) -> Path:
    """``images/train/<stem>.png`` with ``labels/train/<stem>.txt`` holding each text, and data.yaml."""
    for stem, text in labels.items():
        image(folder / "images" / "train" / f"{stem}.png", *size)
        if text is not None:
            (folder / "labels" / "train").mkdir(parents=True, exist_ok=True)
            (folder / "labels" / "train" / f"{stem}.txt").write_text(text)
    path = folder / "data.yaml"
    path.write_text(f"path: .\ntrain: images/train\nval: images/train\nnames: {json.dumps(names)}\n")
    return path


def voc_xml(
    filename: str, objects: list[tuple[str, tuple[float, float, float, float]]], size=(64, 48)
) -> str:
    body = "".join(
        f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
        f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for name, (x1, y1, x2, y2) in objects
    )
    w, h = size
    return f"<annotation><filename>{filename}</filename><size><width>{w}</width><height>{h}</height></size>{body}</annotation>"
