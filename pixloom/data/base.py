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
