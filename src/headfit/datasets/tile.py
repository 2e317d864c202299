"""``tile(dataset, out, size=400)``: large images cut into size x size tiles, as a COCO train/val set.

Tiles are laid on a grid from the top-left; the last tile of a row or column is moved back to end at
the image edge, so every tile is exactly size x size and no pixel is lost (an image smaller than a
tile stays one tile, as it is). A box cut by a tile edge is clipped; one that keeps less than
``min_visible`` of its area, or less than ``min_side`` pixels across, is a sliver: dropped and
counted. Val tiles are chosen by a hash of their names among the tiles that overlap no other tile,
so no val pixel is also seen in training, and no class puts more than ``val_fraction`` of its boxes
in val.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from headfit.datasets.fix import write_coco
from headfit.datasets.geometry import clip_boxes
from headfit.datasets.records import DetectionDataset, ImageRecord
from headfit.errors import UsageError
from headfit.files import atomic_write, output_folder


@dataclass
class TileResult:
    train: Path
    val: Path
    size: int
    images: int  # source images tiled
    skipped: list[str] = field(default_factory=list)  # source images that could not be read
    tiles_train: int = 0
    tiles_val: int = 0
    boxes_kept: int = 0  # boxes (whole or clipped) written, over all tiles
    boxes_clipped: int = 0  # of those, boxes a tile edge cut
    slivers_dropped: int = 0  # cut boxes below min_visible / min_side

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self).items()}

    def summary(self) -> str:
        skipped = f"; skipped {len(self.skipped)} unreadable images" if self.skipped else ""
        return (
            f"tiled {self.images} images into {self.tiles_train + self.tiles_val} tiles of {self.size}x{self.size} "
            f"({self.tiles_train} train -> `{self.train}`, {self.tiles_val} val -> `{self.val}`): "
            f"{self.boxes_kept:,} boxes kept ({self.boxes_clipped:,} clipped at a tile edge), "
            f"{self.slivers_dropped:,} slivers dropped{skipped}"
        )


@dataclass
class _Tile:
    source: ImageRecord
    x: int
    y: int
    width: int
    height: int
    isolated: bool  # overlaps no other tile of its image

    @property
    def name(self) -> str:
        return f"{self.source.file.stem}_x{self.x}_y{self.y}.png"


def tile(
    dataset: DetectionDataset,
    out: Path | str,
    *,
    size: int = 400,
    val_fraction: float = 0.2,
    min_visible: float = 0.5,
    min_side: float = 2.0,
) -> TileResult:
    """Write ``OUT/train.json``, ``OUT/val.json`` and ``OUT/images/*.png`` from ``dataset``'s images."""
    out = Path(out)
    usable = [r for r in dataset.images if r.width is not None and r.header is not None and r.header.usable]
    if not usable:
        raise UsageError(
            f"`{dataset.source}` has no readable image to tile: `headfit data check {dataset.source}` says why"
        )
    result = TileResult(out / "train.json", out / "val.json", size, len(usable))
    result.skipped = [str(r.image_id) for r in dataset.images if r not in usable]
    tiles = [t for record in usable for t in _grid(record, size)]
    in_val = _val_tiles(tiles, val_fraction)
    output_folder(out, "OUT")
    output_folder(out / "images", "OUT/images")
    splits: dict[bool, list[ImageRecord]] = {False: [], True: []}
    for record in usable:
        picture = _open_rgb(record.file)
        for t in (t for t in tiles if t.source is record):
            crop = picture.crop((t.x, t.y, t.x + t.width, t.y + t.height))
            atomic_write(out / "images" / t.name, lambda file, c=crop: c.save(file, format="PNG"))
            splits[t.name in in_val].append(_tile_record(t, out, min_visible, min_side, result))
    for is_val, records in splits.items():
        target = result.val if is_val else result.train
        write_coco(
            DetectionDataset(records, dataset.classes, target, "coco", "val" if is_val else "train"), target
        )
    result.tiles_train, result.tiles_val = len(splits[False]), len(splits[True])
    return result


def _starts(length: int, size: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size, size))
    return starts + [length - size]


def _grid(record: ImageRecord, size: int) -> list[_Tile]:
    xs, ys = _starts(record.width, size), _starts(record.height, size)
    lone_x, lone_y = _isolated(xs, min(size, record.width)), _isolated(ys, min(size, record.height))
    return [
        _Tile(record, x, y, min(size, record.width), min(size, record.height), lone_x[i] and lone_y[j])
        for j, y in enumerate(ys)
        for i, x in enumerate(xs)
    ]


def _isolated(starts: list[int], size: int) -> list[bool]:
    """Per start: whether its interval overlaps no neighbour's."""
    return [
        (k == 0 or starts[k - 1] + size <= s) and (k == len(starts) - 1 or s + size <= starts[k + 1])
        for k, s in enumerate(starts)
    ]


def _val_tiles(tiles: list[_Tile], val_fraction: float) -> set[str]:
    """Val tiles, taken in hash order among those overlapping no other tile; a tile is passed over when
    it would put more than ``val_fraction`` of some class's boxes in val (a class found in one image
    only stays in train)."""
    counts = [Counter(t.source.category_ids[_inside(t)].tolist()) for t in tiles]
    totals: Counter = sum(counts, Counter())
    allowed = {c: math.ceil(val_fraction * n) for c, n in totals.items()}
    target = max(1, round(len(tiles) * val_fraction)) if len(tiles) > 1 else 0
    taken: Counter = Counter()
    chosen: set[str] = set()
    for k in sorted(range(len(tiles)), key=lambda k: hashlib.sha1(tiles[k].name.encode()).digest()):
        if len(chosen) == target:
            break
        if not tiles[k].isolated or any(taken[c] + n > allowed[c] for c, n in counts[k].items()):
            continue
        taken.update(counts[k])
        chosen.add(tiles[k].name)
    return chosen


def _inside(t: _Tile) -> np.ndarray:
    """Boxes whose centre lies in the tile (how the split counts a tile's boxes)."""
    b = t.source.boxes
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    return (cx >= t.x) & (cx < t.x + t.width) & (cy >= t.y) & (cy < t.y + t.height)


def _open_rgb(path: Path):
    from PIL import Image, ImageOps

    with Image.open(path) as opened:
        return ImageOps.exif_transpose(opened).convert("RGB")


def _tile_record(t: _Tile, out: Path, min_visible: float, min_side: float, result: TileResult) -> ImageRecord:
    boxes = t.source.boxes.astype(np.float64)
    shifted = boxes - np.array([t.x, t.y, t.x, t.y], dtype=np.float64)
    clipped = clip_boxes(shifted, t.width, t.height)
    cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    touches = (cw > 0) & (ch > 0)
    area = np.clip(shifted[:, 2] - shifted[:, 0], 0, None) * np.clip(shifted[:, 3] - shifted[:, 1], 0, None)
    visible = np.where(area > 0, cw * ch / np.maximum(area, 1e-9), 0)
    cut = touches & (np.abs(clipped - shifted).max(axis=1) > 0)
    keep = touches & (~cut | ((visible >= min_visible) & (cw >= min_side) & (ch >= min_side)))
    result.boxes_kept += int(keep.sum())
    result.boxes_clipped += int((keep & cut).sum())
    result.slivers_dropped += int((touches & ~keep).sum())
    ids = [f"{t.name}#{k + 1}" for k in range(int(keep.sum()))]
    return ImageRecord(
        image_id=t.name,
        file=out / "images" / t.name,
        width=t.width,
        height=t.height,
        boxes=clipped[keep].astype(np.float32),
        category_ids=t.source.category_ids[keep],
        crowd=t.source.crowd[keep],
        annotation_ids=ids,
    )
