"""What an image file says about itself without being decoded: its size, mode and orientation.

PNG and JPEG, nearly every dataset's images, are read from their first bytes here: the PNG IHDR
chunk and the JPEG frame header (SOFn) hold the size and the channels, an eXIf chunk or APP1 segment
the EXIF orientation (one tag of IFD0). That is about 5 microseconds a file where ``PIL.Image.open``,
lazy as it is, takes about 50, and it is what lets ``data check`` size 10,000 images well under a
second. Every other format, and any PNG or JPEG whose layout the fast path does not follow, goes
through PIL's lazy open; ``tests/test_data_headers.py`` checks that both agree with PIL. A file cut
short is caught by its tail (PNG's ``IEND`` chunk, JPEG's ``EOI`` marker, WebP's RIFF length); only
a file whose tail looks wrong is decoded, to be sure.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

ORIENTATION_TAG = 0x0112  # EXIF "Orientation"; 5..8 rotate the picture by 90 degrees
SWAPS_SIDES = {5, 6, 7, 8}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
TAIL_BYTES = 1024
FIRST_BYTES = 4096  # enough for the header of nearly every PNG and JPEG
PREFIX_BYTES = 1 << 16  # a JPEG's EXIF segment is at most 64 KiB: its frame header follows within this
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)  # O_BINARY: Windows only
END_MARKERS = {"PNG": b"IEND", "JPEG": b"\xff\xd9", "MPO": b"\xff\xd9"}  # what a whole file ends with
# (bit depth, colour type) -> the mode PIL opens a PNG as (PngImagePlugin._MODES)
PNG_MODES = {
    (1, 0): "1", (2, 0): "L", (4, 0): "L", (8, 0): "L", (16, 0): "I;16",
    (8, 2): "RGB", (16, 2): "RGB",
    (1, 3): "P", (2, 3): "P", (4, 3): "P", (8, 3): "P",
    (8, 4): "LA", (16, 4): "RGBA",
    (8, 6): "RGBA", (16, 6): "RGBA",
}  # fmt: skip
JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}  # components -> the mode PIL opens a JPEG as
# PIL modes that need a conversion before training (RGB and the palette mode "P" need nothing a note
# should mention); the words are what a note says
MODE_WORDS = {
    "1": "1-bit",
    "L": "grayscale",
    "LA": "grayscale with alpha",
    "La": "grayscale with alpha",
    "I": "32-bit integer",
    "I;16": "16-bit",
    "I;16B": "16-bit",
    "I;16L": "16-bit",
    "I;16N": "16-bit",
    "F": "32-bit float",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
    "CMYK": "CMYK",
    "YCbCr": "YCbCr",
    "LAB": "LAB",
    "HSV": "HSV",
    "PA": "palette with alpha",
}

OK, MISSING, UNREADABLE, TRUNCATED = "ok", "missing", "unreadable", "truncated"


@dataclass(slots=True)
class ImageHeader:
    """An image file's header: the size a decoder will return (EXIF orientation applied)."""

    status: str  # OK | MISSING | UNREADABLE | TRUNCATED
    width: int | None = None
    height: int | None = None
    format: str | None = None  # PIL's name: "PNG", "JPEG", "TIFF", ...
    mode: str | None = None  # PIL's mode: "RGB", "L", "RGBA", "I;16", "CMYK", ...
    orientation: int = 1  # the EXIF orientation tag (1: stored upright)
    detail: str = ""  # why the file is unreadable or looks truncated

    @property
    def size(self) -> tuple[int, int] | None:
        return None if self.width is None or self.height is None else (self.width, self.height)

    @property
    def stored_size(self) -> tuple[int, int] | None:
        """The size as stored, before the EXIF rotation a decoder applies."""
        if self.size is None:
            return None
        return (self.height, self.width) if self.orientation in SWAPS_SIDES else self.size

    @property
    def usable(self) -> bool:
        return self.status == OK


def is_image_file(path: Path | str) -> bool:
    return str(path).lower().endswith(IMAGE_SUFFIXES)


def read_header(path: Path | str) -> ImageHeader:
    """The header of ``path``; never raises for a missing, empty, foreign or truncated file.

    PNG and JPEG are read with ``os.read`` on a raw descriptor (no buffered file object: half the
    cost of ``open`` for 10,000 small files): the first bytes, then the last ``TAIL_BYTES``. A file
    whose end looks whole (nearly all) is done in this one function: 10,000 of them are 10,000 calls."""
    try:
        fd = os.open(path, OPEN_FLAGS)
    except FileNotFoundError:
        return ImageHeader(MISSING)
    except OSError as exc:
        return ImageHeader(UNREADABLE, detail=exc.strerror or type(exc).__name__)
    try:
        head = os.read(fd, FIRST_BYTES)
        parsed = _fast(head)
        if parsed is not None and len(head) < FIRST_BYTES:  # the whole file
            tail, size = head[-TAIL_BYTES:], len(head)
        else:
            parsed, tail, size = _read_more(fd, head, parsed)
    except OSError as exc:  # a folder named like an image, an I/O error
        return ImageHeader(UNREADABLE, detail=exc.strerror or type(exc).__name__)
    finally:
        os.close(fd)
    if parsed is None:
        return _with_pil(path)
    format_, width, height, mode, orientation = parsed
    if END_MARKERS[format_] in tail:
        if orientation in SWAPS_SIDES:
            width, height = height, width
        return ImageHeader(OK, width, height, format_, mode, orientation)
    return _finished(path, *parsed, _cut_short_by(tail, format_, size))


def _read_more(fd: int, head: bytes, parsed):
    """(parsed PNG / JPEG header or None, the file's last bytes, its size) for a file longer than
    ``head``: the header may need up to ``PREFIX_BYTES`` (a large EXIF block or ICC profile first)."""
    asked = FIRST_BYTES
    if parsed is None and len(head) == asked:
        asked = PREFIX_BYTES
        head += os.read(fd, asked - len(head))
        parsed = _fast(head)
    if parsed is None:
        return None, b"", 0
    if len(head) < asked:  # the whole file
        return parsed, head[-TAIL_BYTES:], len(head)
    size = os.fstat(fd).st_size
    os.lseek(fd, max(0, size - TAIL_BYTES), os.SEEK_SET)
    return parsed, os.read(fd, TAIL_BYTES), size


def _fast(head: bytes):
    if head.startswith(PNG_SIGNATURE):
        return _png(head)
    if head.startswith(b"\xff\xd8"):
        return _jpeg(head)
    return None


def _finished(
    path, format_, width, height, mode, orientation, cut: str, decoded: bool = False
) -> ImageHeader:
    """The header, its size turned by the orientation unless it already is (``decoded``)."""
    if orientation in SWAPS_SIDES and not decoded:
        width, height = height, width
    if cut and not _decodes(path):
        return ImageHeader(TRUNCATED, width, height, format_, mode, orientation, detail=cut)
    return ImageHeader(OK, width, height, format_, mode, orientation)


def _with_pil(path: Path | str) -> ImageHeader:
    """Every format but PNG and JPEG (and a PNG or JPEG the fast path could not follow)."""
    from PIL import Image, UnidentifiedImageError

    try:
        file = open(path, "rb")  # noqa: SIM115 - PIL reads the header, then the tail is read
    except OSError as exc:
        return ImageHeader(UNREADABLE, detail=exc.strerror or type(exc).__name__)
    with file:
        try:
            image = Image.open(file)
            width, height = image.size
            orientation = _orientation(image)
            format_, mode = image.format, image.mode
        except UnidentifiedImageError:
            return ImageHeader(UNREADABLE, detail=_not_an_image(file))
        except (OSError, SyntaxError, ValueError) as exc:  # PIL raises SyntaxError for broken headers
            return ImageHeader(UNREADABLE, detail=str(exc) or type(exc).__name__)
        cut = _cut_short(file, format_)
    # PIL's TIFF plugin applies the orientation tag itself: its size is the decoded size already
    return _finished(path, format_, width, height, mode, orientation, cut, decoded=format_ == "TIFF")


def _tail(file) -> bytes:
    file.seek(0, os.SEEK_END)
    file.seek(max(0, file.tell() - TAIL_BYTES))
    return file.read()


# -- PNG and JPEG headers, read directly (PIL's open costs ~50 us a file; these ~5 us) --------------


def _png(head: bytes):
    """(format, width, height, PIL mode, EXIF orientation) from the IHDR chunk and an eXIf chunk before
    IDAT; None when ``head`` ends before IDAT or the chunks are not where PNG puts them."""
    if len(head) < 33 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    mode = PNG_MODES.get((head[24], head[25]))
    if mode is None or width == 0 or height == 0:
        return None
    orientation = 1
    at = 33
    while True:
        if at + 8 > len(head):
            return None
        length, kind = struct.unpack(">I4s", head[at : at + 8])
        if kind in (b"IDAT", b"IEND"):
            return "PNG", width, height, mode, orientation
        if kind == b"eXIf":
            if at + 8 + length > len(head):
                return None
            orientation = exif_orientation(head[at + 8 : at + 8 + length])
        at += 12 + length


def _jpeg(head: bytes):
    """(format, width, height, PIL mode, EXIF orientation) from the frame header (SOFn) and the APP1
    EXIF segment; None when the SOF is not in the first PREFIX_BYTES (PIL then reads the file)."""
    at, orientation = 2, 1
    while at + 4 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker in (0xFF, 0x01) or 0xD0 <= marker <= 0xD7:  # fill byte, TEM, RSTn: no length
            at += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", head[at + 2 : at + 4])
        segment = head[at + 4 : at + 2 + length]
        if at + 2 + length > len(head):
            return None
        if marker == 0xE1 and segment.startswith(b"Exif\x00\x00"):
            orientation = exif_orientation(segment[6:])
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if len(segment) < 6:
                return None
            height, width = struct.unpack(">HH", segment[1:5])
            mode = JPEG_MODES.get(segment[5])
            if mode is None or width == 0 or height == 0:
                return None
            return "JPEG", width, height, mode, orientation
        elif marker == 0xDA:  # start of scan before any frame header
            return None
        at += 2 + length
    return None


def exif_orientation(tiff: bytes) -> int:
    """The Orientation tag (0x0112) of IFD0 in a raw EXIF (TIFF) block; 1 when absent or malformed."""
    if tiff.startswith(b"Exif\x00\x00"):
        tiff = tiff[6:]
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    (offset,) = struct.unpack(order + "I", tiff[4:8])
    if offset + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
    for k in range(count):
        entry = tiff[offset + 2 + 12 * k : offset + 14 + 12 * k]
        if len(entry) < 12:
            return 1
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag == ORIENTATION_TAG and kind == 3:  # SHORT
            (value,) = struct.unpack(order + "H", entry[8:10])
            return value if 1 <= value <= 8 else 1
    return 1


def _not_an_image(file) -> str:
    file.seek(0, os.SEEK_END)
    if file.tell() == 0:
        return "the file is empty (0 bytes)"
    file.seek(0)
    start = file.read(16)
    if start.lstrip()[:1] in (b"<", b"{", b"["):
        return "it is text (HTML, JSON or XML), not an image"
    return f"no image format starts with the bytes {start[:8].hex(' ')}"


def _cut_short(file, format_: str | None) -> str:
    """Why the file's tail says it was cut short ("" when it looks whole)."""
    file.seek(0, os.SEEK_END)
    size = file.tell()
    if format_ == "WEBP":
        file.seek(4)
        declared = int.from_bytes(file.read(4), "little") + 8
        return (
            f"the RIFF header declares {declared:,} bytes, the file has {size:,}" if size < declared else ""
        )
    return _cut_short_by(_tail(file), format_, size)


def _cut_short_by(tail: bytes, format_: str | None, size: int) -> str:
    marker = END_MARKERS.get(format_ or "")
    if marker is None or marker in tail:
        return ""
    name = "IEND chunk" if marker == b"IEND" else "end-of-image marker (FF D9)"
    return f"the file ({size:,} bytes) ends without its {name}"


def _orientation(image) -> int:
    """The EXIF orientation without decoding: TIFF keeps it as a tag, the others as a raw EXIF block."""
    tags = getattr(image, "tag_v2", None)
    if tags is not None:
        return int(tags.get(274, 1) or 1)
    raw = image.info.get("exif")
    return exif_orientation(raw) if raw else 1


def _decodes(path: Path | str) -> bool:
    """Decode the whole file (only for a file whose tail looked wrong): some writers append data."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError):
        return False
    return True


def mode_words(mode: str | None) -> str | None:
    """What a note calls a mode that training converts to RGB (None for RGB and palette images)."""
    return MODE_WORDS.get(mode or "")
