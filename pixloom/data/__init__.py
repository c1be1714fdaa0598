"""Data sets: images (MNIST, binarized MNIST, Fashion-MNIST, CIFAR-10, an embedded sample, any image
folder) and captioned photos (Flickr8k, Flickr30k, COCO), through one registry.

>>> from pixloom.data import load_dataset
>>> train = load_dataset("sample", "train")          # offline, shipped with the package
>>> train.images.shape, train.levels
(torch.Size([6000, 1, 28, 28]), 256)

MNIST: LeCun, Bottou, Bengio and Haffner 1998. Fashion-MNIST: Xiao, Rasul and Vollgraf 2017.
Binarized MNIST: Larochelle and Murray 2011. See :mod:`pixloom.data.mnist` for the files, the
download mirrors, the checksums, the split protocol and the fixed binarization.
CIFAR-10: Krizhevsky 2009; see :mod:`pixloom.data.cifar` (45k/5k/10k split, binary and python files).
Captioned data: :mod:`pixloom.data.flickr8k`; the encoder feature cache: :mod:`pixloom.data.features`.
"""

from __future__ import annotations

from pixloom.data.base import ImageDataset
from pixloom.data.registry import (DATA_ENV_VAR, DATASETS, IMAGE_SPLITS, dataset_kind, image_split, load_dataset,
                                   resolve_data_dir)

SPLITS = IMAGE_SPLITS

__all__ = ["DATASETS", "DATA_ENV_VAR", "SPLITS", "ImageDataset", "dataset_kind", "image_split", "load_dataset",
           "resolve_data_dir"]
