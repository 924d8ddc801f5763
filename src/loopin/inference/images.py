"""Turning untrusted request bytes into an upright RGB image, or a clear ValidationError."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from loopin.errors import ValidationError

DEFAULT_MAX_PIXELS = 40_000_000
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")

# --------------------------------------------------------------------------- decoding

_OTHER_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"BM", "BMP"),
)

# What PIL raises on damaged data; anything else is a bug and should surface as one.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


def _sniff_format(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _sniff_other_format(data: bytes) -> str | None:
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        return "HEIF/AVIF"
    return None


def _too_many_pixels(width: int, height: int, max_pixels: int) -> ValidationError:
    return ValidationError(
        f"The image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels.",
        details={"width": width, "height": height, "max_pixels": max_pixels},
    )


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode untrusted bytes into an upright RGB image, or raise ``ValidationError``.

    Accepts JPEG, PNG and WebP (first frame of animations). The size is checked from the
    header before any pixel is decoded; then the whole image is decoded so that truncated
    files fail here rather than later. This relies on Pillow's default
    ``ImageFile.LOAD_TRUNCATED_IMAGES = False``, which loopin never changes.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"decode_image() needs bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ValidationError("The request body is empty: send a JPEG, PNG or WebP image.")
    fmt = _sniff_format(data)
    if fmt is None:
        other = _sniff_other_format(data)
        if other is not None:
            raise ValidationError(
                f"Unsupported image format {other}: send a JPEG, PNG or WebP image.",
                details={"format": other},
            )
        raise ValidationError("The request body is not a JPEG, PNG or WebP image.")

    # Image.open reads only the header. Pillow's own bomb check (Image.MAX_IMAGE_PIXELS)
    # raises DecompressionBombError above twice its limit and warns above it; with warnings
    # turned into errors the warning is raised too. All of them become a ValidationError.
    try:
        img = Image.open(io.BytesIO(data), formats=[fmt])
        width, height = img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValidationError(
            "The image declares more pixels than Pillow will decode (a possible "
            f"decompression bomb); the limit is {max_pixels} pixels.",
            details={"max_pixels": max_pixels},
        ) from exc
    except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
        raise ValidationError(f"The {fmt} image header is not valid: {exc}") from exc
    if width < 1 or height < 1:
        raise ValidationError(f"The image has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise _too_many_pixels(width, height, max_pixels)

    try:
        img.load()  # full decode: raises on truncated or corrupt data
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels(width, height, max_pixels) from exc
    except _DECODE_ERRORS as exc:
        raise ValidationError(f"The {fmt} image is truncated or corrupt: {exc}") from exc

    try:
        upright = ImageOps.exif_transpose(img)
    except _DECODE_ERRORS:
        upright = img  # unreadable EXIF: keep the stored orientation rather than reject
    if upright is None:  # pragma: no cover - only with in_place=True
        upright = img
    if upright.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        # 16-bit greyscale PNG: Pillow's convert() would clip it to white; scale instead.
        levels = np.asarray(upright).astype(np.float32) / 257.0
        upright = Image.fromarray(np.clip(np.rint(levels), 0, 255).astype(np.uint8), "L")
    return upright if upright.mode == "RGB" else upright.convert("RGB")
