"""One registry of data sets, images and captions alike: :func:`load_dataset` and :data:`DATASETS`.

Image data sets (MNIST, binarized MNIST, Fashion-MNIST, CIFAR-10, an embedded sample, any image
folder) load as an :class:`~pixloom.data.base.ImageDataset`; captioned ones (Flickr8k, Flickr30k,
COCO, a synthetic set for tests) as a :class:`~pixloom.data.captions.CaptionSet`.

Data root (where files are looked up, downloaded and cached): the ``data_dir`` argument (the
command line's ``--data-dir``), else the ``PIXLOOM_DATA`` environment variable, else
``~/.cache/pixloom``. Captioned data sets take ``data_dir`` as their own folder (default
``<root>/<name>``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pixloom.data.root import DATA_ENV_VAR, resolve_data_dir
from pixloom.errors import DataError

IMAGE_SPLITS = ("train", "valid", "test")
CAPTION_SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: str  # "images" | "captions"
    summary: str


def _info(kind: str, entries: dict[str, str]) -> dict[str, DatasetInfo]:
    return {name: DatasetInfo(name, kind, summary) for name, summary in entries.items()}


DATASETS: dict[str, DatasetInfo] = {
    **_info("images", {
        "sample": "8,000 MNIST digits shipped with pixloom (6k/1k/1k), 8-bit; works offline",
        "sample-binarized": "the embedded sample binarized with the fixed Bernoulli(p/255) scheme, levels 2",
        "mnist": "MNIST digits 28x28, 8-bit, 50k train / 10k valid / 10k test (LeCun et al. 1998)",
        "binarized-mnist": "MNIST binarized once with a fixed seed, levels 2 (Larochelle & Murray 2011)",
        "binarized-mnist-dynamic": "binarized-mnist whose train split is binarized afresh for every batch",
        "fashion-mnist": "Fashion-MNIST clothes 28x28, 8-bit, 50k/10k/10k (Xiao et al. 2017)",
        "cifar10": "CIFAR-10 colour images 3x32x32, 8-bit, 45k train / 5k valid / 10k test (Krizhevsky 2009)",
        "folder:PATH": "your own PNG/JPEG/BMP/GIF images, resized square (default 28)",
    }),
    **_info("captions", {
        "flickr8k": "Flickr8k photos with 5 captions each, official files (Hodosh et al. 2013)",
        "flickr8k-karpathy": "Flickr8k with Karpathy's dataset_flickr8k.json",
        "flickr30k": "Flickr30k with Karpathy's dataset_flickr30k.json (+ flickr30k-images/)",
        "coco": "MS COCO with Karpathy's dataset_coco.json (+ train2014/, val2014/)",
        "synthetic": "rendered shapes with templated captions (tests; no files)",
    }),
}


__all__ = ["DATASETS", "DATA_ENV_VAR", "DatasetInfo", "dataset_kind", "image_split", "load_dataset", "resolve_data_dir"]


def dataset_kind(name: str) -> str:
    """``"images"`` or ``"captions"`` for a data set name (``folder:PATH`` is images)."""
    if isinstance(name, str) and name.startswith("folder:"):
        return "images"
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[name].kind


def image_split(split: str) -> str:
    """``train`` | ``valid`` | ``test`` (``dev`` and ``val`` mean ``valid``)."""
    split = {"dev": "valid", "val": "valid"}.get(split, split)
    if split not in IMAGE_SPLITS:
        raise DataError(f"unknown split {split!r}: choose one of {', '.join(IMAGE_SPLITS)}")
    return split


def load_dataset(name: str, split: str, data_dir: str | os.PathLike | None = None, download: bool = True,
                 image_size: int | None = None):
    """Load one split of the data set ``name`` (see :data:`DATASETS`).

    Image data sets take ``train``, ``valid`` (alias ``dev``) or ``test`` and return an
    :class:`~pixloom.data.base.ImageDataset` of uint8 levels; captioned data sets take ``train``,
    ``dev`` (alias ``valid``) or ``test`` and return a :class:`~pixloom.data.captions.CaptionSet`.
    ``download=False`` never touches the network; ``image_size`` resizes ``folder:PATH`` images (and
    sets the picture size of the synthetic captioned set).
    """
    if not isinstance(name, str) or not name:
        raise DataError("a data set name is required: choose one of " + ", ".join(DATASETS))
    if dataset_kind(name) == "captions":
        from pixloom.data.flickr8k import load_caption_dataset

        return load_caption_dataset(name, split, data_dir, synthetic_size=image_size or 32)
    split = image_split(split)
    if name.startswith("folder:"):
        from pixloom.data.folder import load_folder

        path = name[len("folder:"):]
        if not path:
            raise DataError("folder: needs a path, e.g. folder:./my-images")
        return load_folder(path, split, image_size)
    from pixloom.data.cifar import IMAGE_SIZE as CIFAR_IMAGE_SIZE
    from pixloom.data.mnist import IMAGE_SIZE

    native_size = CIFAR_IMAGE_SIZE if name == "cifar10" else IMAGE_SIZE
    if image_size is not None and image_size != native_size:
        raise DataError(f"{name} images are {native_size}x{native_size} and cannot be resized to "
                        f"{image_size}; resizing applies to folder:PATH data sets only")
    if name in ("sample", "sample-binarized"):
        from pixloom.data.embedded import load_sample

        return load_sample(split, binarized=name == "sample-binarized")
    root = resolve_data_dir(data_dir)
    if name == "cifar10":
        from pixloom.data.cifar import load_cifar10

        return load_cifar10(split, root, download)
    from pixloom.data.mnist import load_binarized_mnist, load_mnist

    if name == "binarized-mnist":
        return load_binarized_mnist(split, root, download)
    if name == "binarized-mnist-dynamic":
        return load_binarized_mnist(split, root, download, dynamic=split == "train")
    return load_mnist(split, root, download, fashion=name == "fashion-mnist")
