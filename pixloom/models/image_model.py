"""Shared behaviour of the image generators: likelihood loss, input checks, completion grids.

Pixel values enter every generator as integer levels (uint8 tensors ``(B, C, H, W)`` with values in
``[0, levels - 1]``); ``levels = 2`` means a Bernoulli output, otherwise a ``levels``-way softmax.
"""

from __future__ import annotations

import math

import torch

from pixloom.errors import PixloomError
from pixloom.models.base import PixloomModel


class ImageGenerator(PixloomModel):
    """A generative model of images with a (bound on the) log-likelihood in nats per image.

    Configs of subclasses carry ``channels``, ``height``, ``width``, ``levels`` and ``num_classes``
    (0 = unconditional).
    """

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c = self.config
        return (c.channels, c.height, c.width)

    @property
    def num_dims(self) -> int:
        return math.prod(self.image_shape)

    # -- likelihood -------------------------------------------------------------------------
    def log_prob(self, image: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """Log-likelihood in nats of each image, shape (B,)."""
        raise NotImplementedError

    def nll(self, image: torch.Tensor, label: torch.Tensor | None = None, **options) -> dict[str, torch.Tensor]:
        """Per-image figures for evaluation; ``nll_nats`` (B,) is always present."""
        if options:
            raise PixloomError(f"{self.name} takes no evaluation options ({', '.join(options)})")
        return {"nll_nats": -self.log_prob(image, label)}

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        nll = -self.log_prob(batch["image"], batch.get("label"))
        nll_mean = nll.mean()
        return {
            "loss": nll_mean / self.num_dims,  # nats per dimension: a scale that suits Adam
            "nll_nats": nll_mean.detach(),
            "bits_per_dim": nll_mean.detach() / (self.num_dims * math.log(2.0)),
        }

    # -- generation -------------------------------------------------------------------------
    def sample(self, n: int, temperature: float = 1.0, label: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` new images as uint8 levels, shape (n, C, H, W)."""
        raise NotImplementedError

    # -- input checks shared by every entry point -------------------------------------------
    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        """Validate integer images against this model; returns them on the model's device."""
        if images.dim() == 3:
            images = images.unsqueeze(0)
        if images.dim() != 4:
            raise PixloomError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
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
        if images.is_floating_point():
            raise PixloomError("images must hold integer pixel levels")
        if int(images.min()) < 0 or int(images.max()) >= self.config.levels:
            raise PixloomError(f"pixel values must lie in [0, {self.config.levels - 1}]")
        return images.to(self.device)

    def known_pixels(self, images: torch.Tensor, known_rows: int | None, mask) -> torch.Tensor:
        """The boolean (B, C, H, W) mask of kept pixels for ``complete``: the top ``known_rows`` rows, or
        ``mask`` of shape (C, H, W) or (B, C, H, W). Exactly one of the two must be given."""
        if (known_rows is None) == (mask is None):
            raise PixloomError("give exactly one of known_rows or mask")
        if mask is None:
            mask = known_rows_mask(self.image_shape, known_rows)
        mask = torch.as_tensor(mask, dtype=torch.bool, device=self.device)
        if mask.dim() == 3:
            mask = mask.unsqueeze(0)
        if mask.dim() != 4 or tuple(mask.shape[1:]) != self.image_shape or mask.shape[0] not in (1, len(images)):
            raise PixloomError(f"mask must have shape {self.image_shape}, got {tuple(mask.shape)}")
        return mask.expand_as(images)

    def check_label(self, label, n: int) -> torch.Tensor | None:
        """Class labels for ``n`` images: None for unconditional models, random if not given."""
        classes = self.config.num_classes
        if not classes:
            if label is not None:
                raise PixloomError(f"{self.name} was trained without class conditioning; drop the label")
            return None
        if label is None:
            return torch.arange(n, device=self.device) % classes
        label = torch.as_tensor(label, device=self.device).long().reshape(-1)
        if label.numel() == 1:
            label = label.expand(n)
        if label.numel() != n or int(label.min()) < 0 or int(label.max()) >= classes:
            raise PixloomError(f"labels must be {n} integers in [0, {classes - 1}]")
        return label


def known_rows_mask(image_shape: tuple[int, int, int], known_rows: int) -> torch.Tensor:
    """Boolean mask (C, H, W) that is True on the top ``known_rows`` rows."""
    c, h, w = image_shape
    if not 0 <= known_rows <= h:
        raise PixloomError(f"--keep-rows must lie in [0, {h}] for {w}x{h} images, got {known_rows}")
    mask = torch.zeros(c, h, w, dtype=torch.bool)
    mask[:, :known_rows] = True
    return mask
