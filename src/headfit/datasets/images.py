"""The one place that turns an image file into a tensor: ``uint8 [3, H, W]`` RGB, EXIF orientation applied.

``torchvision.io.decode_image`` decodes JPEG, PNG, WebP and GIF (CMYK JPEGs, palette, grayscale and
RGBA images converted by ``ImageReadMode.RGB``; 16-bit PNGs scaled to 8 bits here). Everything else
(TIFF, BMP, ...) goes through PIL. torch is imported when an image is decoded, not when this module
is: reading and linting a dataset never pays for it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from headfit.errors import UsageError

if TYPE_CHECKING:
    import torch

TORCHVISION_FORMATS = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8")  # and WebP: b"RIFF" .... b"WEBP"


def decode_image(path: Path | str) -> torch.Tensor:
    """``uint8 [3, H, W]`` RGB of the image at ``path``; a file that cannot be decoded is a UsageError
    naming it (``headfit data check`` lists every such file before training)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read image `{path}`: {exc.strerror or exc}") from None
    try:
        if _torchvision_decodes(data):
            return _decode_with_torchvision(data)
        return _decode_with_pil(path)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - each decoder has its own error types
        raise UsageError(
            f"cannot decode image `{path}` ({_reason(exc)}): the file is corrupt, "
            f"truncated or not an image; `headfit data check` lists every such file"
        ) from None


def _reason(exc: Exception) -> str:
    """The decoder's words, without torchvision's C++ source location (``decode_png.cpp:79, ``)."""
    text = " ".join(str(exc).split())
    return re.split(r"\.cpp:\d+, ", text)[-1][:200] or type(exc).__name__


def _torchvision_decodes(data: bytes) -> bool:
    return data.startswith(TORCHVISION_FORMATS) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _decode_with_torchvision(data: bytes) -> torch.Tensor:
    import torch
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_image as tv_decode

    encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    image = tv_decode(encoded, mode=ImageReadMode.RGB, apply_exif_orientation=True)
    if image.dtype != torch.uint8:  # 16-bit PNG
        from torchvision.transforms.v2.functional import to_dtype

        image = to_dtype(image, torch.uint8, scale=True)
    if image.ndim == 4:  # an animated GIF: its first frame
        image = image[0]
    return image


def _decode_with_pil(path: Path) -> torch.Tensor:
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)
        image.load()
    pixels = np.asarray(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # high bit depth: scale to 8 bits
        peak = 65535.0 if image.mode.startswith("I;16") or pixels.max(initial=0) > 255 else 255.0
        pixels = np.clip(pixels.astype(np.float32) / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        rgb = np.repeat(pixels[:, :, None], 3, axis=2)
    else:
        rgb = np.asarray(image.convert("RGB"))
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).contiguous()
