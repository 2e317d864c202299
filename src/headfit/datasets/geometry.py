"""Box arithmetic shared by lint, fix and tile: the formats as written, EXIF orientation, clipping.

Boxes are numpy ``[N, 4]`` x1 y1 x2 y2 in continuous pixels (the left edge of the image is 0, the
right edge is its width). ``exif_boxes`` maps boxes drawn on the pixels as stored to the picture a
decoder returns after applying the EXIF orientation (PIL's ``ImageOps.exif_transpose``).
"""

from __future__ import annotations

import numpy as np

# orientation -> how a point (x, y) of the stored picture (width W, height H) moves
_EXIF_POINTS = {
    1: lambda x, y, w, h: (x, y),
    2: lambda x, y, w, h: (w - x, y),  # mirrored left-right
    3: lambda x, y, w, h: (w - x, h - y),  # rotated 180
    4: lambda x, y, w, h: (x, h - y),  # mirrored top-bottom
    5: lambda x, y, w, h: (y, x),  # transposed
    6: lambda x, y, w, h: (h - y, x),  # rotated 90 clockwise to display
    7: lambda x, y, w, h: (h - y, w - x),  # transversed
    8: lambda x, y, w, h: (y, w - x),  # rotated 90 counter-clockwise to display
}


def exif_boxes(boxes: np.ndarray, orientation: int, stored_size: tuple[int, int]) -> np.ndarray:
    """Boxes on the stored pixels, moved to the decoded (EXIF-applied) picture."""
    width, height = stored_size
    move = _EXIF_POINTS.get(orientation, _EXIF_POINTS[1])
    ax, ay = move(boxes[:, 0], boxes[:, 1], width, height)
    bx, by = move(boxes[:, 2], boxes[:, 3], width, height)
    out = np.stack([np.minimum(ax, bx), np.minimum(ay, by), np.maximum(ax, bx), np.maximum(ay, by)], axis=1)
    return out.astype(boxes.dtype)


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    out = boxes.copy()
    out[:, 0::2] = np.clip(out[:, 0::2], 0, width)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, height)
    return out


def fits(boxes: np.ndarray, width: float, height: float, tolerance: float = 1e-3) -> np.ndarray:
    """Per box: inside the image (within ``tolerance`` pixels)."""
    return (
        (boxes[:, 0] >= -tolerance)
        & (boxes[:, 1] >= -tolerance)
        & (boxes[:, 2] <= width + tolerance)
        & (boxes[:, 3] <= height + tolerance)
    )


def as_written(box: np.ndarray, format_: str) -> str:
    """A box the way the user's file spells it (COCO's x, y, w, h; x1, y1, x2, y2 elsewhere)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if format_ == "coco":
        return f"bbox [{_n(x1)}, {_n(y1)}, {_n(x2 - x1)}, {_n(y2 - y1)}]"
    return f"box x1,y1,x2,y2 [{_n(x1)}, {_n(y1)}, {_n(x2)}, {_n(y2)}]"


def xyxy_text(box: np.ndarray | list[float]) -> str:
    return "[" + ", ".join(_n(float(v)) for v in box) + "]"


def _n(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 1e-6 else f"{value:.2f}"
