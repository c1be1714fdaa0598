"""Reading any image file (JPEG, PNG, ...; grayscale, palette, RGBA, 16-bit) with one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixloom.errors import PixloomError


def read_rgb(path: str | Path, size: int | None = None) -> np.ndarray:
    """Any JPEG/PNG/... (grayscale, palette, RGBA, 16-bit) -> uint8 RGB array (H, W, 3).

    Transparent pixels are composited on white; 16-bit images are scaled to 8 bits. ``size``
    resizes to ``size`` x ``size`` (aspect ratio not kept, like the resized Flickr8k copy).
    Unreadable files raise a one-line :class:`PixloomError`.
    """
    from PIL import Image, UnidentifiedImageError

    file = Path(path)
    if not file.is_file():
        raise PixloomError(f"image not found: {path}")
    try:
        with Image.open(file) as picture:
            picture.load()
            mode = picture.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
                array = np.asarray(picture, dtype=np.float32)
                top = 65535.0 if array.max() > 255 else 255.0
                grey = np.clip(np.round(array / top * 255.0), 0, 255).astype(np.uint8)
                picture = Image.fromarray(grey, mode="L")
            if picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info):
                rgba = picture.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                picture = Image.alpha_composite(background, rgba)
            picture = picture.convert("RGB")
            if size is not None and picture.size != (size, size):
                picture = picture.resize((size, size), Image.BICUBIC)
            return np.asarray(picture, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else "corrupt file"
        raise PixloomError(f"cannot read image {path}: {message}") from None
