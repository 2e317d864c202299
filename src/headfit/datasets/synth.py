"""``headfit data synth OUT``: a small detection set with exact boxes, for the demo, tests and benchmarks.

Each class is one shape kind in one saturated colour (a red circle, a blue square, ...) so a small
detector learns it in about a hundred steps at 160 px; backgrounds are muted textures (smooth noise,
grain, stripes). An image holds one to four objects of a sixth to a third of its side: some overlap,
some are cut by the border (their box is the visible part), and every eighth image is empty. Each
box is the exact extent of the pixels its shape drew (before later shapes covered any of them, as a
person annotates an occluded object). The same seed writes the same bytes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from headfit.errors import UsageError
from headfit.files import atomic_write, atomic_write_text, output_folder

SHAPES = ("circle", "square", "triangle", "cross", "diamond", "star", "ring", "hexagon")
COLOURS = {
    "red": (220, 30, 30),
    "blue": (30, 70, 235),
    "yellow": (245, 220, 20),
    "green": (30, 185, 45),
    "magenta": (220, 40, 200),
    "cyan": (20, 215, 225),
    "orange": (250, 135, 0),
    "purple": (115, 35, 175),
    "white": (248, 248, 248),
    "black": (12, 12, 12),
    "pink": (255, 150, 190),
    "lime": (170, 250, 60),
}
MAX_CLASSES = 24  # shape k % 8 in colour k % 12: distinct pairs up to 24
MAX_SIZE = 4096  # a side past it is a typo, and its images would not fit in memory
EMPTY_EVERY = 8  # image i with i % 8 == 3 has no object
VAL_EVERY = 5  # image i with i % 5 == 4 goes to val
SIDE = (0.17, 0.34)  # object side, as a fraction of the image side
MAX_IOU = 0.35  # objects overlap, but none hides another


def synth(
    out: Path | str, *, images: int = 64, classes: int = 3, size: int = 160, seed: int = 0
) -> tuple[Path, Path]:
    """Write ``OUT/train.json``, ``OUT/val.json`` (COCO, category ids 1..K) and ``OUT/images/*.png``."""
    _check_arguments(images, classes, size)
    out = Path(out)
    output_folder(out, "OUT")
    output_folder(out / "images", "OUT/images")
    rng = np.random.default_rng(seed)
    categories = [{"id": k + 1, "name": class_name(k), "supercategory": "shape"} for k in range(classes)]
    splits: dict[str, dict[str, list]] = {s: {"images": [], "annotations": []} for s in ("train", "val")}
    next_annotation = 1
    for index in range(images):
        image_id = index + 1
        picture, objects = _draw_image(rng, index, classes, size)
        name = f"{image_id:06d}.png"
        atomic_write(out / "images" / name, lambda file, p=picture: p.save(file, format="PNG", optimize=False))
        split = splits["val" if index % VAL_EVERY == VAL_EVERY - 1 else "train"]
        split["images"].append({"id": image_id, "file_name": name, "width": size, "height": size})
        for label, (x1, y1, x2, y2) in objects:
            split["annotations"].append(
                {
                    "id": next_annotation,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
            next_annotation += 1
    paths = (out / "train.json", out / "val.json")
    for path, split in zip(paths, splits.values(), strict=True):
        _write_json(
            path, {"info": {"description": f"headfit synth seed={seed}"}, **split, "categories": categories}
        )
    return paths


def class_name(k: int) -> str:
    """``circle``, ``square``, ... for the first eight classes; ``blue_circle`` and so on after."""
    shape = SHAPES[k % len(SHAPES)]
    return shape if k < len(SHAPES) else f"{list(COLOURS)[k % len(COLOURS)]}_{shape}"


def _check_arguments(images: int, classes: int, size: int) -> None:
    if not 1 <= classes <= MAX_CLASSES:
        raise UsageError(
            f"--classes {classes}: synth draws 1 to {MAX_CLASSES} classes (8 shapes x 12 colours)"
        )
    if images < 2:
        raise UsageError(f"--images {images}: synth needs at least 2 images (one for train, one for val)")
    if not 32 <= size <= MAX_SIZE:
        raise UsageError(f"--size {size}: synth draws images of 32x32 to {MAX_SIZE}x{MAX_SIZE} pixels")


def _write_json(path: Path, document: dict) -> None:
    atomic_write_text(path, json.dumps(document))


# -- one image -----------------------------------------------------------------------------------------


def _draw_image(rng: np.random.Generator, index: int, classes: int, size: int):
    from PIL import Image

    picture = Image.fromarray(_texture(rng, size))
    count = 0 if index % EMPTY_EVERY == 3 else int(rng.integers(1, 5))
    objects: list[tuple[int, tuple[int, int, int, int]]] = []
    for _ in range(count):
        label = int(rng.integers(classes))
        placed = _place(rng, size, [box for _, box in objects])
        if placed is None:
            continue
        mask, box = _shape_mask(label, placed, size)
        colour = tuple(int(c) for c in np.clip(np.array(_colour(label)) + rng.integers(-12, 13, 3), 0, 255))
        picture.paste(colour, (0, 0), mask)
        objects.append((label, box))
    return picture, objects


def _colour(label: int) -> tuple[int, int, int]:
    return list(COLOURS.values())[label % len(COLOURS)]


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted background: a low-saturation base, smooth blotches, grain, and sometimes stripes."""
    from PIL import Image

    grey = rng.uniform(85, 165)
    base = grey + rng.uniform(-18, 18, 3)
    coarse = rng.normal(0, 16, (6, 6, 3)).astype(np.float32)
    blotches = np.stack(
        [np.asarray(Image.fromarray(coarse[:, :, c]).resize((size, size), Image.BICUBIC)) for c in range(3)],
        axis=2,
    )
    pixels = base + blotches + rng.normal(0, 5, (size, size, 3))
    if rng.random() < 0.5:
        angle, period = rng.uniform(0, math.pi), rng.uniform(6, 20)
        y, x = np.mgrid[0:size, 0:size]
        pixels += (8 * np.sin((x * math.cos(angle) + y * math.sin(angle)) * 2 * math.pi / period))[:, :, None]
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _place(rng: np.random.Generator, size: int, taken: list[tuple[int, int, int, int]]):
    """A square (x, y, side) for the next shape: partly outside the image one time in four, overlapping
    no earlier box by more than MAX_IOU; None when twenty tries find no room."""
    for _ in range(20):
        side = int(rng.uniform(*SIDE) * size)
        if rng.random() < 0.25:  # cut by the border, at most 40% of it outside
            low, high = -int(0.4 * side), size - int(0.6 * side)
        else:
            low, high = 0, size - side
        x, y = int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1))
        box = (max(x, 0), max(y, 0), min(x + side, size), min(y + side, size))
        if all(_iou(box, other) <= MAX_IOU for other in taken):
            return x, y, side
    return None


def _iou(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _shape_mask(label: int, placed: tuple[int, int, int], size: int):
    """The shape's mask on the whole image and the exact box of its pixels (x1, y1, x2, y2)."""
    from PIL import Image, ImageDraw

    x, y, side = placed
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    shape = SHAPES[label % len(SHAPES)]
    _DRAW[shape](draw, x, y, side)
    box = mask.getbbox()
    if box is None:  # cannot happen for a shape at least 40% inside; kept exact all the same
        return mask, (0, 0, 0, 0)
    return mask, tuple(int(v) for v in box)


def _polygon(draw, x, y, side, points) -> None:
    draw.polygon([(x + px * side, y + py * side) for px, py in points], fill=255)


def _regular(n: int, start: float, inner: float | None = None) -> list[tuple[float, float]]:
    """Points of a regular n-gon (or an n-pointed star when ``inner`` is given) in the unit square."""
    points = []
    steps = 2 * n if inner is not None else n
    for k in range(steps):
        radius = 0.5 if inner is None or k % 2 == 0 else inner
        angle = start + 2 * math.pi * k / steps
        points.append((0.5 + radius * math.cos(angle), 0.5 + radius * math.sin(angle)))
    return points


_DRAW = {
    "circle": lambda d, x, y, s: d.ellipse([x, y, x + s - 1, y + s - 1], fill=255),
    "square": lambda d, x, y, s: d.rectangle(
        [x + s // 10, y + s // 10, x + s - 1 - s // 10, y + s - 1 - s // 10], fill=255
    ),
    "triangle": lambda d, x, y, s: _polygon(d, x, y, s, [(0.5, 0.0), (1.0, 0.95), (0.0, 0.95)]),
    "cross": lambda d, x, y, s: (
        d.rectangle([x + s // 3, y, x + s - 1 - s // 3, y + s - 1], fill=255),
        d.rectangle([x, y + s // 3, x + s - 1, y + s - 1 - s // 3], fill=255),
    ),
    "diamond": lambda d, x, y, s: _polygon(d, x, y, s, [(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)]),
    "star": lambda d, x, y, s: _polygon(d, x, y, s, _regular(5, -math.pi / 2, inner=0.22)),
    "ring": lambda d, x, y, s: d.ellipse([x, y, x + s - 1, y + s - 1], outline=255, width=max(2, s // 5)),
    "hexagon": lambda d, x, y, s: _polygon(d, x, y, s, _regular(6, 0.0)),
}
