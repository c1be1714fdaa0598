"""A small MNIST sample shipped inside the package, so that every command works offline.

``pixloom/data/assets/mnist_sample.npz`` holds 8,000 MNIST images (LeCun, Bottou, Bengio and
Haffner 1998; data by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, CC BY-SA 3.0) with
their labels, made by ``bench/make_embedded_sample.py``:

* ``train``: the first 6,000 images of the official training file,
* ``valid``: the first 1,000 of its last 10,000 images (training images 50,000 to 50,999),
* ``test``: the first 1,000 images of the official test file.

So each split is a prefix of the matching split of the full data set (:mod:`pixloom.data.mnist`).
``sample-binarized`` binarizes them with the fixed Bernoulli scheme of binarized MNIST
(:func:`pixloom.data.mnist.binarize`, after Larochelle and Murray 2011): its pixels are exactly
those of the same images in ``binarized-mnist`` (when that one is not read from .amat files).
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch

from pixloom.data.base import ImageDataset
from pixloom.data.mnist import NUM_CLASSES, SPLITS, binarize
from pixloom.errors import DataError, arg

SAMPLE_RESOURCE = "assets/mnist_sample.npz"
SAMPLE_SIZES = {"train": 6_000, "valid": 1_000, "test": 1_000}
# Official file and first image index of each split, for binarize().
SAMPLE_ORIGIN = {"train": ("train", 0), "valid": ("train", 50_000), "test": ("test", 0)}


def _read_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    resource = resources.files("pixloom.data").joinpath(SAMPLE_RESOURCE)
    try:
        with resource.open("rb") as handle, np.load(handle, allow_pickle=False) as npz:
            images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise DataError(f"the embedded MNIST sample ({SAMPLE_RESOURCE}) is missing or corrupt "
                        f"({' '.join(str(exc).split())}): reinstall pixloom, or use {arg('data_dir')} "
                        f"with the full MNIST files") from None
    expected = (SAMPLE_SIZES[split], 28, 28)
    if images.shape != expected or images.dtype != np.uint8 or labels.shape != expected[:1]:
        raise DataError(f"the embedded MNIST sample ({SAMPLE_RESOURCE}) is corrupt: reinstall pixloom")
    return images, labels


def load_sample(split: str, binarized: bool = False) -> ImageDataset:
    """The embedded sample: 8-bit (levels 256) or binarized (levels 2), labels 0..9."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    images, labels = _read_split(split)
    if binarized:
        images = binarize(images, *SAMPLE_ORIGIN[split])
    name = "sample-binarized" if binarized else "sample"
    return ImageDataset(torch.from_numpy(np.array(images)).unsqueeze(1),
                        torch.from_numpy(labels.astype(np.int64)), 2 if binarized else 256,
                        NUM_CLASSES, f"{name}/{split}")
