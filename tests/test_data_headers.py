"""Image headers read without decoding agree with PIL (size as decoded, mode, EXIF orientation), and
files cut short, empty or foreign are named, never raised."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from headfit.datasets.headers import MISSING, OK, TRUNCATED, UNREADABLE, read_header

PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")
JPEG_MODES = ("L", "RGB", "CMYK")


def _image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65535, (height, width), dtype=np.uint16))
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).convert(mode)


def _exif(orientation: int, padding: int = 0) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    if padding:
        exif[0x010E] = "x" * padding  # ImageDescription: pushes the frame header past the first 4 KiB
    return exif.tobytes()


def _as_pil_sees_it(path) -> tuple[tuple[int, int], str, int]:
    with Image.open(path) as image:
        orientation = image.getexif().get(0x0112, 1)
        return ImageOps.exif_transpose(image).size, image.mode, orientation


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from([("png", m) for m in PNG_MODES] + [("jpg", m) for m in JPEG_MODES]),
    width=st.integers(1, 70),
    height=st.integers(1, 70),
    orientation=st.integers(1, 8),
    padding=st.sampled_from([0, 5000, 30000]),
    progressive=st.booleans(),
)
def test_the_header_agrees_with_pil(tmp_path, kind, width, height, orientation, padding, progressive):
    suffix, mode = kind
    path = tmp_path / f"image.{suffix}"
    options = {"exif": _exif(orientation, padding)}
    if suffix == "jpg":
        options["progressive"] = progressive
    _image(mode, width, height, width * height).save(path, **options)
    header = read_header(path)
    size, pil_mode, pil_orientation = _as_pil_sees_it(path)
    assert header.status == OK
    assert (header.size, header.mode, header.orientation) == (size, pil_mode, pil_orientation)
    assert header.format == ("PNG" if suffix == "png" else "JPEG")


@pytest.mark.parametrize("suffix", ["tif", "bmp", "webp", "gif"])
def test_other_formats_go_through_pil(tmp_path, suffix):
    path = tmp_path / f"image.{suffix}"
    _image("RGB", 30, 20, 0).save(path)
    header = read_header(path)
    assert header.status == OK and header.size == (30, 20)


def test_a_tiff_orientation_tag_is_applied(tmp_path):
    from PIL import TiffImagePlugin

    path = tmp_path / "rotated.tif"
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[0x0112] = 8
    _image("RGB", 30, 20, 0).save(path, tiffinfo=tags)
    assert read_header(path).size == (20, 30) == _as_pil_sees_it(path)[0]


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_a_file_cut_short_is_truncated(tmp_path, suffix):
    path = tmp_path / f"cut.{suffix}"
    _image("RGB", 200, 150, 1).save(path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) * 2 // 3])
    header = read_header(path)
    assert header.status == TRUNCATED and header.size == (200, 150)
    assert "ends without its" in header.detail


def test_a_truncated_webp_is_caught_by_its_riff_length(tmp_path):
    path = tmp_path / "cut.webp"
    _image("RGB", 200, 150, 1).save(path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    header = read_header(path)
    assert header.status in (TRUNCATED, UNREADABLE)


def test_data_after_the_end_marker_is_not_truncation(tmp_path):
    path = tmp_path / "trailer.jpg"
    _image("RGB", 40, 30, 2).save(path)
    path.write_bytes(path.read_bytes() + b"\x00" * 5000)  # some cameras append data after EOI
    assert read_header(path).status == OK


def test_missing_empty_and_foreign_files_are_named(tmp_path):
    assert read_header(tmp_path / "absent.png").status == MISSING
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "page.jpg").write_text("<html>404</html>")
    (tmp_path / "noise.png").write_bytes(b"\x01\x02\x03\x04" * 8)
    assert "empty" in read_header(tmp_path / "empty.jpg").detail
    assert "text" in read_header(tmp_path / "page.jpg").detail
    noise = read_header(tmp_path / "noise.png")
    assert noise.status == UNREADABLE and "01 02 03 04" in noise.detail


def test_a_broken_png_header_falls_back_to_pil_and_is_unreadable(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert read_header(path).status == UNREADABLE
