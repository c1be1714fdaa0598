"""Training data for super-resolution: random patches cut on the fly from any folder of photos.

The photos are read once into memory as their luma channel Y (ITU-R BT.601, uint8), optionally
shrunk first by ``prescale`` (bicubic, antialiased: a common way to remove JPEG artefacts and sensor
noise before cutting high-resolution patches). Each training item is a random ``patch * scale`` square
of a random photo, flipped and rotated by a random multiple of 90 degrees, and its bicubic
downscaling (:mod:`pixloom.data.resize`) is the low-resolution input. The draws use torch's global
generator, which the Trainer seeds per epoch and saves in checkpoints, so a resumed run sees the same
patches. Validation items are fixed: the centre crop of each photo, unaugmented.

Photos come from ``folder:PATH`` (every picture under PATH; ``train/`` and ``valid/`` sub-folders
when present, else a fixed 90/10 split of the file list) or from Flickr8k's train and dev lists.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixloom.data.images import read_rgb
from pixloom.data.resize import downscale
from pixloom.errors import DataError

Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def luma(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> uint8 BT.601 Y (H, W) in [16, 235]."""
    return np.clip(np.round(16.0 + rgb.astype(np.float64) @ Y_WEIGHTS), 0, 255).astype(np.uint8)


def load_luma(paths: list[Path], prescale: float = 1.0, min_side: int = 0) -> list[np.ndarray]:
    """The Y channel of each photo (shrunk by ``prescale``); photos smaller than ``min_side`` after
    that are left out (with a note on stderr)."""
    out, skipped = [], 0
    for path in paths:
        y = luma(read_rgb(path))
        if prescale != 1.0:
            h, w = y.shape
            size = (max(1, round(w * prescale)), max(1, round(h * prescale)))
            y = np.asarray(Image.fromarray(y).resize(size, Image.BICUBIC))
        if min(y.shape) < min_side:
            skipped += 1
            continue
        out.append(np.ascontiguousarray(y))
    if skipped:
        print(f"pixloom: note: left out {skipped} photos smaller than {min_side} pixels", file=sys.stderr)
    return out


class PatchDataset:
    """Items: ``{"lr": uint8 (1, patch, patch), "hr": uint8 (1, patch*scale, patch*scale)}``."""

    def __init__(self, photos: list[np.ndarray], scale: int, patch: int, per_photo: int = 1, train: bool = True,
                 name: str = "patches"):
        if not photos:
            raise DataError(f"{name}: no photos of at least {patch * scale} pixels to cut patches from")
        self.photos, self.scale, self.patch = photos, scale, patch
        self.per_photo = per_photo if train else 1
        self.train = train
        self.name = name

    def __len__(self) -> int:
        return len(self.photos) * self.per_photo

    def _crop(self, photo: np.ndarray) -> np.ndarray:
        size = self.patch * self.scale
        h, w = photo.shape
        if self.train:
            top = int(torch.randint(0, h - size + 1, (1,)))
            left = int(torch.randint(0, w - size + 1, (1,)))
        else:
            top, left = (h - size) // 2, (w - size) // 2
        crop = photo[top:top + size, left:left + size]
        if self.train:
            turns, flip = int(torch.randint(0, 4, (1,))), bool(torch.randint(0, 2, (1,)))
            crop = np.rot90(crop, turns)
            if flip:
                crop = crop[:, ::-1]
        return np.ascontiguousarray(crop)

    def get_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        hr = torch.stack([torch.from_numpy(self._crop(self.photos[int(i) % len(self.photos)]))
                          for i in torch.as_tensor(indices).reshape(-1)])[:, None]
        return {"lr": downscale(hr, self.scale), "hr": hr}


def photo_paths(data: str, split: str, data_dir=None) -> list[Path]:
    """The photo files of ``split`` (train | valid) of ``folder:PATH`` or ``flickr8k``."""
    from pixloom.data.folder import image_files, split_positions
    from pixloom.data.registry import image_split

    split = image_split(split)
    if data.startswith("folder:"):
        folder = Path(data[len("folder:"):]).expanduser()
        if not folder.is_dir():
            raise DataError(f"folder not found: {folder}")
        sub = folder / split
        if sub.is_dir():
            files = image_files(sub)
        else:
            files = image_files(folder)
            files = [files[k] for k in split_positions(len(files))[split]]
        if not files:
            raise DataError(f"no pictures for the {split} split in {folder}")
        return files
    if data == "flickr8k":
        from pixloom.data.flickr8k import load_flickr8k
        from pixloom.data.root import resolve_data_dir

        root = Path(data_dir).expanduser() if data_dir else resolve_data_dir(None) / "flickr8k"
        photos = load_flickr8k(root, {"valid": "dev"}.get(split, split))
        return list(photos.image_paths)
    raise DataError(f"super-resolution trains on photos: folder:PATH or flickr8k, not {data!r}")
