"""Any folder of images (PNG, JPEG, BMP, GIF) as an 8-bit data set, read with Pillow.

* Files are found recursively (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.gif``, any case) and
  sorted by their path relative to the folder.
* Channels: one (grayscale) if every image of the folder is grayscale, else three (RGB); images are
  converted accordingly (alpha is dropped; GIFs give their first frame).
* Size: every image is resized to ``image_size`` x ``image_size`` (default 28), bilinear, without
  keeping the aspect ratio.
* Splits: if the folder has ``train/``, ``valid/`` (or ``val/``) and ``test/`` subfolders, each
  split is the images under its subfolder. Otherwise the sorted files are split 90% / 5% / 5%:
  ``len // 20`` files go to ``valid`` and as many to ``test`` (at least one ``valid`` file as soon
  as there are two images), picked at evenly spaced positions of the sorted list, alternately
  valid and test, so that names that group images (``cat_*``, ``dog_*``) do not bias the split.
* Unreadable files are skipped, with a count on stderr. Labels: none. Levels: 256.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageMode, UnidentifiedImageError

from pixloom.data.base import ImageDataset
from pixloom.errors import DataError

DEFAULT_IMAGE_SIZE = 28
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})
SPLIT_DIRS = {"train": ("train",), "valid": ("valid", "val"), "test": ("test",)}

_IMAGE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted by relative path; hidden files skipped."""
    files = [path for path in folder.rglob("*")
             if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
             and not any(part.startswith(".") for part in path.relative_to(folder).parts)]
    return sorted(files, key=lambda path: path.relative_to(folder).as_posix())


def split_positions(n: int) -> dict[str, list[int]]:
    """Positions in the sorted file list of each split, for a folder without split subfolders."""
    n_valid = n_test = n // 20
    if n >= 2 and n_valid == 0:
        n_valid = 1
    held = n_valid + n_test
    # Evenly spaced, distinct positions (consecutive ones are n / held >= 1 apart).
    held_out = [((2 * k + 1) * n) // (2 * held) for k in range(held)]
    valid, test = held_out[0::2], held_out[1::2]
    taken = set(held_out)
    return {"train": [i for i in range(n) if i not in taken], "valid": valid, "test": test}


def _is_grayscale(image: Image.Image) -> bool:
    if image.mode in ("P", "PA"):
        palette = image.getpalette()
        if not palette:
            return False
        rgb = np.asarray(palette, dtype=np.int32).reshape(-1, 3)
        return bool((rgb == rgb[:, :1]).all())
    return ImageMode.getmode(image.mode).basemode == "L"


def _to_array(image: Image.Image, mode: str, size: int) -> np.ndarray:
    """(H, W, C) uint8 array of ``image`` in ``mode`` ("L" or "RGB"), resized to size x size."""
    if image.mode.startswith("I;16"):  # 16-bit grayscale: keep the 8 high bits rather than clip
        image = Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8))
    image = image.convert(mode)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).reshape(size, size, -1)


def _scan(files: list[Path]) -> tuple[list[Path], bool, list[Path]]:
    """Open every file's header: (readable files, all grayscale?, unreadable files)."""
    readable, unreadable, gray = [], [], True
    for path in files:
        try:
            with Image.open(path) as image:
                gray = gray and _is_grayscale(image)
            readable.append(path)
        except _IMAGE_ERRORS:
            unreadable.append(path)
    return readable, gray, unreadable


def _warn_skipped(folder: Path, skipped: list[Path]) -> None:
    if skipped:
        print(f"pixloom: skipped {len(skipped)} unreadable image file(s) in {folder} "
              f"(first: {skipped[0].relative_to(folder)})", file=sys.stderr)


def _split_dir(folder: Path, split: str) -> Path | None:
    return next((folder / d for d in SPLIT_DIRS[split] if (folder / d).is_dir()), None)


def load_folder(path: str | Path, split: str, image_size: int | None = None) -> ImageDataset:
    """One split of a folder of images (see the module docstring for the rules)."""
    if split not in SPLIT_DIRS:
        raise DataError(f"unknown split {split!r}: choose one of {', '.join(SPLIT_DIRS)}")
    size = DEFAULT_IMAGE_SIZE if image_size is None else int(image_size)
    if size < 1:
        raise DataError(f"image size must be a positive number of pixels, got {image_size}")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder} (use folder:PATH with a folder of "
                        f"PNG/JPEG/BMP/GIF images)")

    split_dirs = {s: _split_dir(folder, s) for s in SPLIT_DIRS}
    if any(split_dirs.values()):
        if split_dirs[split] is None:
            present = ", ".join(f"{d.name}/" for d in split_dirs.values() if d is not None)
            raise DataError(f"{folder} has split subfolders ({present}) but none for {split!r}: "
                            f"add {SPLIT_DIRS[split][0]}/ or pass a folder without split subfolders")
        # The channel count must agree between splits, so every split is scanned.
        files, gray, unreadable = _scan([f for d in split_dirs.values() if d for f in image_files(d)])
        chosen = [f for f in files if split_dirs[split] in f.parents]
    else:
        files, gray, unreadable = _scan(image_files(folder))
        chosen = [files[i] for i in split_positions(len(files))[split]]
    if not files:
        _warn_skipped(folder, unreadable)
        raise DataError(f"no readable images (.png, .jpg, .jpeg, .bmp, .gif) found in {folder}")
    if not chosen:
        raise DataError(f"no images for split {split!r} in {folder} ({len(files)} image(s) in all; "
                        f"add images or train/, valid/, test/ subfolders)")

    mode = "L" if gray else "RGB"
    arrays = []
    for file in chosen:
        try:
            with Image.open(file) as image:
                arrays.append(_to_array(image, mode, size))
        except _IMAGE_ERRORS:  # the header was fine but the pixel data is not
            unreadable.append(file)
    _warn_skipped(folder, unreadable)
    if not arrays:
        raise DataError(f"no readable images for split {split!r} in {folder}")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(images, None, 256, 0, f"folder:{folder}/{split}")
