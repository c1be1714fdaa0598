"""What the image models share: the image fields of their configs, input checks and conversions, and
the likelihood training loss of the exact-likelihood generators.

Pixel values enter every image model as integer levels (uint8 tensors ``(B, C, H, W)`` with values
in ``[0, levels - 1]``); ``levels = 2`` means a Bernoulli output, otherwise a ``levels``-way softmax.
Image files, PIL images and numpy arrays are converted by :meth:`ImageModel.prepare_images`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pixloom.errors import ArgumentError, PixloomError
from pixloom.models.base import PixloomModel
from pixloom.models.capabilities import Likelihood, Sampler, Trainable


@dataclass
class ImageConfig:
    """The image fields every image model's config starts with (set from the training data)."""

    channels: int = 1
    height: int = 28
    width: int = 28
    levels: int = 2  # 2: binary pixels (Bernoulli); 256: 8-bit (256-way softmax)
    num_classes: int = 0  # > 0: class-conditional


IMAGE_FIELDS = ("channels", "height", "width", "levels", "num_classes")


class ImageModel(PixloomModel):
    """A model of ``channels x height x width`` images with ``levels`` pixel levels."""

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c = self.config
        return (c.channels, c.height, c.width)

    @property
    def num_dims(self) -> int:
        return math.prod(self.image_shape)

    # -- conversions at the boundary ----------------------------------------------------------
    def prepare_images(self, images) -> torch.Tensor:
        """Images in any form a user has -> uint8 levels (B, C, H, W) on the model's device.

        Accepts an integer tensor of levels ((C, H, W) or (B, C, H, W)), an image file path, a PIL
        image, a uint8 numpy array (H, W) or (H, W, 3), or a list of paths / PIL images / arrays.
        Pictures are converted to this model's channels and levels (grey pictures for 1-channel
        models; levels by thresholding at 128 for binary models)."""
        if isinstance(images, torch.Tensor):
            return self.check_images(images)
        items = images if isinstance(images, (list, tuple)) else [images]
        if not items:
            raise ArgumentError("images", "is empty")
        pictures = [self._picture_levels(item) for item in items]
        return self.check_images(torch.stack(pictures))

    def _picture_levels(self, item) -> torch.Tensor:
        from pixloom.data.images import picture_to_rgb, read_rgb

        if isinstance(item, (str, Path)):
            rgb = read_rgb(item, background="black" if self.config.channels == 1 else "white")
        elif isinstance(item, np.ndarray) or hasattr(item, "mode"):  # numpy array or PIL image
            rgb = picture_to_rgb(item, background="black" if self.config.channels == 1 else "white")
        elif isinstance(item, torch.Tensor):
            return self.check_images(item)[0].cpu()
        else:
            raise ArgumentError("images", f"must be tensors, file paths, PIL images or numpy arrays, got {type(item).__name__}")
        tensor = torch.from_numpy(rgb).permute(2, 0, 1)  # (3, H, W)
        if self.config.channels == 1:
            tensor = tensor.float().mul(torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
            tensor = tensor.round().clamp(0, 255).to(torch.uint8)
        c, h, w = self.image_shape
        if tuple(tensor.shape[1:]) != (h, w):
            raise PixloomError(f"this model takes {w}x{h} images, got {tensor.shape[2]}x{tensor.shape[1]}")
        levels = self.config.levels
        if levels == 2:
            return (tensor >= 128).to(torch.uint8)
        if levels != 256:
            return (tensor.float() * (levels - 1) / 255.0).round().to(torch.uint8)
        return tensor

    # -- input checks shared by every entry point -------------------------------------------
    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        """Validate integer images against this model; returns them on the model's device."""
        if not isinstance(images, torch.Tensor):
            raise ArgumentError("images", f"must be a tensor of pixel levels, got {type(images).__name__}")
        if images.dim() == 3:
            images = images.unsqueeze(0)
        if images.dim() != 4:
            raise PixloomError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
        if images.shape[0] == 0:
            raise ArgumentError("images", "is empty")
        if tuple(images.shape[1:]) != self.image_shape:
            c, h, w = self.image_shape
            got_c, got_h, got_w = images.shape[1:]
            if got_c != c:
                kinds = {1: "grayscale", 3: "RGB"}
                raise PixloomError(
                    f"this model takes {kinds.get(c, f'{c}-channel')} images, got a "
                    f"{kinds.get(int(got_c), f'{int(got_c)}-channel')} image"
                )
            raise PixloomError(f"this model takes {w}x{h} images, got {int(got_w)}x{int(got_h)}")
        if images.is_floating_point() or images.dtype == torch.bool or images.is_complex():
            raise PixloomError("images must hold integer pixel levels")
        if int(images.min()) < 0 or int(images.max()) >= self.config.levels:
            raise PixloomError(f"pixel values must lie in [0, {self.config.levels - 1}]")
        return images.to(self.device)

    def known_pixels(self, images: torch.Tensor, known_rows: int | None, mask) -> torch.Tensor:
        """The boolean (B, C, H, W) mask of kept pixels for ``complete``: the top ``known_rows`` rows, or
        ``mask`` of shape (C, H, W) or (B, C, H, W). Exactly one of the two must be given."""
        if (known_rows is None) == (mask is None):
            raise ArgumentError("known_rows", "or mask: give exactly one of the two")
        if mask is None:
            mask = known_rows_mask(self.image_shape, known_rows)
        mask = torch.as_tensor(mask, dtype=torch.bool, device=self.device)
        if mask.dim() == 2 and self.image_shape[0] == 1:
            mask = mask.unsqueeze(0)
        if mask.dim() == 3:
            mask = mask.unsqueeze(0)
        if mask.dim() != 4 or tuple(mask.shape[1:]) != self.image_shape or mask.shape[0] not in (1, len(images)):
            raise ArgumentError("mask", f"must have shape {self.image_shape}, got {tuple(mask.shape)}")
        return mask.expand_as(images)

    def check_label(self, label, n: int) -> torch.Tensor | None:
        """Class labels for ``n`` images: None for unconditional models, cycling 0, 1, ... if not given."""
        classes = self.config.num_classes
        if not classes:
            if label is not None:
                raise ArgumentError("label", f"cannot be used: {self.name} was trained without class conditioning")
            return None
        if label is None:
            return torch.arange(n, device=self.device) % classes
        label = torch.as_tensor(label, device=self.device)
        if label.is_floating_point() or label.dtype == torch.bool:
            raise ArgumentError("label", f"must be integers in [0, {classes - 1}]")
        label = label.long().reshape(-1)
        if label.numel() == 1:
            label = label.expand(n)
        if label.numel() != n or int(label.min()) < 0 or int(label.max()) >= classes:
            raise ArgumentError("label", f"must be {n} integers in [0, {classes - 1}]")
        return label


def check_temperature(temperature: float) -> float:
    """Sampling temperature: a finite number >= 0 (1 = the model's own distribution, 0 = the most
    likely value of each pixel)."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating, np.integer)):
        raise ArgumentError("temperature", f"must be a number, got {temperature!r}")
    value = float(temperature)
    if not (math.isfinite(value) and value >= 0):
        raise ArgumentError("temperature", f"must be a finite number of at least 0, got {temperature}")
    return value


def check_count(n, name: str = "n", most: int | None = None) -> int:
    """A count of images: a whole number >= 1 (and at most ``most``)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ArgumentError(name, f"must be a whole number of at least 1, got {n!r}")
    if most is not None and n > most:
        raise ArgumentError(name, f"must be at most {most:,}, got {n:,}")
    return int(n)


class ImageGenerator(ImageModel, Trainable, Likelihood, Sampler):
    """An image model with an exact (or bounded) likelihood that also samples; trained on the
    negative log-likelihood per dimension."""

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        nll = -self.log_prob(batch["image"], batch.get("label"))
        nll_mean = nll.mean()
        return {
            "loss": nll_mean / self.num_dims,  # nats per dimension: a scale that suits Adam
            "nll_nats": nll_mean.detach(),
            "bits_per_dim": nll_mean.detach() / (self.num_dims * math.log(2.0)),
        }


def known_rows_mask(image_shape: tuple[int, int, int], known_rows: int) -> torch.Tensor:
    """Boolean mask (C, H, W) that is True on the top ``known_rows`` rows."""
    c, h, w = image_shape
    if isinstance(known_rows, bool) or not isinstance(known_rows, (int, np.integer)) or not 0 <= known_rows <= h:
        raise ArgumentError("known_rows", f"must lie in [0, {h}] for {w}x{h} images, got {known_rows!r}")
    mask = torch.zeros(c, h, w, dtype=torch.bool)
    mask[:, :known_rows] = True
    return mask
