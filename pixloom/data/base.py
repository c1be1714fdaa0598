"""The in-memory image data set every image model trains on."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ImageDataset:
    """Images held in memory as integer pixel levels.

    images: uint8 tensor (N, C, H, W) with values in [0, levels - 1]
            (levels = 2 for binarized data, 256 for 8-bit images).
    labels: int64 tensor (N,) or None.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    levels: int
    num_classes: int = 0
    name: str = ""

    def __post_init__(self):
        if self.images.dim() != 4 or self.images.dtype != torch.uint8:
            raise ValueError("images must be a uint8 tensor (N, C, H, W)")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError("labels and images differ in length")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def get_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = {"image": self.images[indices]}
        if self.labels is not None:
            batch["label"] = self.labels[indices]
        return batch

    def subset(self, limit: int) -> "ImageDataset":
        """The first ``limit`` items (all of them when limit is None or larger)."""
        if limit is None or limit >= len(self):
            return self
        labels = None if self.labels is None else self.labels[:limit]
        return ImageDataset(self.images[:limit], labels, self.levels, self.num_classes, self.name)


def binarize(values: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One stochastic binarization of 8-bit images: pixel = 1 with probability value/255 (uint8)."""
    return (torch.rand(values.shape, generator=generator) * 255 < values).to(torch.uint8)


@dataclass
class DynamicallyBinarizedDataset(ImageDataset):
    """Binary images drawn afresh every time a batch is read: pixel = 1 with probability value/255.

    Dynamic binarization (used for training by Burda et al. 2016 and most VAE papers since) shows a
    model a new binarization of each training image in every epoch, so it cannot memorise one
    draw of the binarization noise. ``images`` holds one fixed binarization (what ``.images`` readers
    such as ``pixloom reconstruct`` see); ``intensities`` the 8-bit images (N, C, H, W) the batches
    are drawn from, with torch's global generator (which the Trainer seeds per process and step).
    """

    intensities: torch.Tensor | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.levels != 2 or self.intensities is None or self.intensities.shape != self.images.shape:
            raise ValueError("a dynamically binarized data set needs levels 2 and 8-bit intensities "
                             "of the same shape as its images")

    def get_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = super().get_batch(indices)
        values = self.intensities[indices]
        batch["image"] = binarize(values)
        return batch

    def subset(self, limit: int) -> "ImageDataset":
        if limit is None or limit >= len(self):
            return self
        labels = None if self.labels is None else self.labels[:limit]
        return DynamicallyBinarizedDataset(self.images[:limit], labels, self.levels, self.num_classes, self.name,
                                           self.intensities[:limit])
