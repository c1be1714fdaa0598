"""Helpers shared by the latent-variable image models (recurrent VAE, DRAW, sequence autoencoder):
Gaussian KL, row views of images and interpolation weights. The importance-weighted base class of the
VAE-style models is in :mod:`pixloom.models.latent.iwae`."""

from __future__ import annotations

import math

import torch

from pixloom.errors import ArgumentError, PixloomError
from pixloom.nn.pixel_output import to_unit_interval

LOG_2PI = math.log(2 * math.pi)


def require_binary_unconditional(model) -> None:
    """One-line errors for the image kinds the VAE-style models do not handle."""
    c = model.config
    if c.levels != 2:
        raise PixloomError(f"{model.name} models binary images only (levels 2), got levels {c.levels}; "
                           "use binarized data such as sample-binarized or binarized-mnist")
    if c.num_classes:
        raise PixloomError(f"{model.name} has no class conditioning; train it without class labels")


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) in nats, summed over the last dimension."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def standard_normal_log_ratio(z: torch.Tensor, eps: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) - log N(z; mu, sigma^2) for z = mu + sigma * eps, summed over the last dim."""
    return (-0.5 * z.pow(2) + 0.5 * eps.pow(2) + log_sigma).sum(-1)


def image_rows(images: torch.Tensor, levels: int) -> torch.Tensor:
    """Integer images (B, C, H, W) -> float rows (B, H, C*W) in [0, 1]."""
    b, _, h, _ = images.shape
    return to_unit_interval(images, levels).permute(0, 2, 1, 3).reshape(b, h, -1)


def interpolation_weights(steps: int, device) -> torch.Tensor:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ArgumentError("steps", f"must be a whole number of at least 2, got {steps!r}")
    return torch.linspace(0.0, 1.0, steps, device=device)
