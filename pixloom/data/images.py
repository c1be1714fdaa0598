"""Reading any image (JPEG, PNG, ...; grayscale, palette, RGBA, 16-bit; a file, a PIL image or a numpy
array) as 8-bit RGB, with one-line errors for what cannot be read.

Limits: a picture of more than :data:`MAX_PIXELS` pixels is refused before it is decoded (a
decompression bomb, or an image too large to hold), and a fully transparent picture is refused (it
has no content to show a model). Transparent pixels of other pictures are composited on a background
the caller picks: white for photos, black for digit models (whose empty paper is black).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixloom.errors import PixloomError, one_line

MAX_PIXELS = 64 * 1024 * 1024  # 8192 x 8192
BACKGROUNDS = {"white": (255, 255, 255, 255), "black": (0, 0, 0, 255)}


def read_rgb(path: str | Path, size: int | None = None, background: str = "white") -> np.ndarray:
    """Any JPEG/PNG/... file -> uint8 RGB array (H, W, 3); see :func:`picture_to_rgb`.

    Unreadable files raise a one-line :class:`PixloomError`."""
    from PIL import Image, UnidentifiedImageError

    file = Path(path)
    if not file.is_file():
        raise PixloomError(f"image not found: {path}")
    try:
        with Image.open(file) as picture:
            _check_size(picture.size, path)
            picture.load()
            return picture_to_rgb(picture, size, background, where=str(path))
    except PixloomError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise PixloomError(f"cannot read image {path}: {one_line(exc) if str(exc) else 'corrupt file'}") from None


def _check_size(size: tuple[int, int], where) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise PixloomError(f"image {where} is empty ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise PixloomError(f"image {where} has {width}x{height} = {width * height:,} pixels, more than the "
                           f"{MAX_PIXELS:,} pixloom reads (a decompression bomb, or too large to hold)")


def picture_to_rgb(picture, size: int | None = None, background: str = "white", where: str = "picture") -> np.ndarray:
    """A PIL image or a numpy array (H, W) / (H, W, 3) / (H, W, 4) -> uint8 RGB array (H, W, 3).

    Transparent pixels are composited on ``background`` (``white`` or ``black``); 16-bit and float
    images are scaled to 8 bits. ``size`` resizes to ``size`` x ``size`` (bicubic; the aspect ratio
    is not kept, like the resized Flickr8k copy)."""
    from PIL import Image

    if isinstance(picture, np.ndarray):
        picture = _array_to_picture(picture, where)
    if not isinstance(picture, Image.Image):
        raise PixloomError(f"{where}: expected a PIL image or a numpy array, got {type(picture).__name__}")
    if background not in BACKGROUNDS:
        raise PixloomError(f"unknown background {background!r}; choose white or black")
    _check_size(picture.size, where)
    mode = picture.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(picture, dtype=np.float32)
        top = 65535.0 if array.max() > 255 else 255.0
        grey = np.clip(np.round(array / top * 255.0), 0, 255).astype(np.uint8)
        picture = Image.fromarray(grey, mode="L")
    if picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (picture.mode == "P" and "transparency" in picture.info):
        rgba = picture.convert("RGBA")
        if not np.asarray(rgba)[..., 3].any():
            raise PixloomError(f"{where} is fully transparent: it has no content to read")
        canvas = Image.new("RGBA", rgba.size, BACKGROUNDS[background])
        picture = Image.alpha_composite(canvas, rgba)
    picture = picture.convert("RGB")
    if size is not None and picture.size != (size, size):
        picture = picture.resize((size, size), Image.BICUBIC)
    return np.asarray(picture, dtype=np.uint8).copy()


def _array_to_picture(array: np.ndarray, where: str):
    from PIL import Image

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise PixloomError(f"{where}: expected an array (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
    if array.dtype == np.uint8:
        pass
    elif array.dtype == np.uint16:
        array = np.round(array / 65535.0 * 255.0).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise PixloomError(f"{where}: a float array must hold values in [0, 1]")
        array = np.round(array * 255.0).astype(np.uint8)
    else:
        raise PixloomError(f"{where}: unsupported array type {array.dtype} (use uint8, uint16 or floats in [0, 1])")
    mode = "L" if array.ndim == 2 else "RGB" if array.shape[2] == 3 else "RGBA"
    return Image.fromarray(np.ascontiguousarray(array), mode=mode)
