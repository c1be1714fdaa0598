"""Image data sets: MNIST, binarized MNIST, Fashion-MNIST, CIFAR-10, an embedded sample, any image folder.

>>> from pixloom.data import load_dataset
>>> train = load_dataset("sample", "train")          # offline, shipped with the package
>>> train.images.shape, train.levels
(torch.Size([6000, 1, 28, 28]), 256)

MNIST: LeCun, Bottou, Bengio and Haffner 1998. Fashion-MNIST: Xiao, Rasul and Vollgraf 2017.
Binarized MNIST: Larochelle and Murray 2011. See :mod:`pixloom.data.mnist` for the files, the
download mirrors, the checksums, the split protocol and the fixed binarization.
CIFAR-10: Krizhevsky 2009; see :mod:`pixloom.data.cifar` (45k/5k/10k split, binary and python files).

Data root (where MNIST and CIFAR-10 files are looked up, downloaded and cached): the ``data_dir`` argument
(the CLI's ``--data-dir``), else the ``PIXLOOM_DATA`` environment variable, else
``~/.cache/pixloom``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pixloom.data.base import ImageDataset
from pixloom.data.cifar import IMAGE_SIZE as CIFAR_IMAGE_SIZE
from pixloom.data.cifar import load_cifar10
from pixloom.data.embedded import load_sample
from pixloom.data.folder import DEFAULT_IMAGE_SIZE, load_folder
from pixloom.data.mnist import IMAGE_SIZE, SPLITS, load_binarized_mnist, load_mnist
from pixloom.errors import DataError

__all__ = ["DATASETS", "SPLITS", "ImageDataset", "load_dataset", "resolve_data_dir"]

DATA_ENV_VAR = "PIXLOOM_DATA"
DEFAULT_DATA_DIR = "~/.cache/pixloom"

DATASETS = {
    "sample": "8,000 MNIST digits shipped with pixloom (6k/1k/1k), 8-bit; works offline (default)",
    "sample-binarized": "the embedded sample binarized with the fixed Bernoulli(p/255) scheme, levels 2",
    "mnist": "MNIST digits 28x28, 8-bit, 50k train / 10k valid / 10k test (LeCun et al. 1998)",
    "binarized-mnist": "MNIST binarized once with a fixed seed, levels 2 (Larochelle & Murray 2011)",
    "binarized-mnist-dynamic": "binarized-mnist whose train split is binarized afresh for every batch "
                               "(dynamic binarization); valid and test are binarized-mnist's",
    "fashion-mnist": "Fashion-MNIST clothes 28x28, 8-bit, 50k/10k/10k (Xiao et al. 2017)",
    "cifar10": "CIFAR-10 colour images 3x32x32, 8-bit, 45k train / 5k valid / 10k test (Krizhevsky 2009)",
    "folder:PATH": f"your own PNG/JPEG/BMP/GIF images, resized square (default {DEFAULT_IMAGE_SIZE})",
}


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: ``data_dir`` if given, else ``$PIXLOOM_DATA``, else ``~/.cache/pixloom``."""
    chosen = data_dir if data_dir else os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser()


def load_dataset(name: str, split: str, data_dir: str | None = None, download: bool = True,
                 image_size: int | None = None) -> ImageDataset:
    """Load one split (``train``, ``valid`` or ``test``) of the data set ``name`` (see DATASETS).

    ``download=False`` never touches the network; ``image_size`` resizes ``folder:PATH`` images
    (the MNIST-style data sets are 28x28 only, CIFAR-10 32x32 only).
    """
    if name.startswith("folder:"):
        path = name[len("folder:"):]
        if not path:
            raise DataError("folder: needs a path, e.g. folder:./my-images")
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
        return load_folder(path, split, image_size)
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    native_size = CIFAR_IMAGE_SIZE if name == "cifar10" else IMAGE_SIZE
    if image_size is not None and image_size != native_size:
        raise DataError(f"{name} images are {native_size}x{native_size} and cannot be resized to "
                        f"{image_size}; resizing applies to folder:PATH data sets only")
    if name in ("sample", "sample-binarized"):
        return load_sample(split, binarized=name == "sample-binarized")
    root = resolve_data_dir(data_dir)
    if name == "cifar10":
        return load_cifar10(split, root, download)
    if name == "binarized-mnist":
        return load_binarized_mnist(split, root, download)
    if name == "binarized-mnist-dynamic":
        return load_binarized_mnist(split, root, download, dynamic=split == "train")
    return load_mnist(split, root, download, fashion=name == "fashion-mnist")
