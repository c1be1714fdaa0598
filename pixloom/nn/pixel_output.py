"""Per-pixel output distributions: Bernoulli (binary images) and 256-way categorical.

A model emits ``logits`` for each pixel: shape ``(..., )`` for ``levels == 2`` (one logit, the
log-odds of a 1) or ``(..., levels)`` for a categorical over ``levels`` intensities.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pixloom.errors import ArgumentError


def logits_per_pixel(levels: int) -> int:
    """How many numbers a model emits per pixel and channel."""
    return 1 if levels == 2 else levels


def pixel_log_prob(logits: torch.Tensor, target: torch.Tensor, levels: int) -> torch.Tensor:
    """Log-probability (nats) of integer pixel values ``target`` under ``logits``, elementwise."""
    if levels == 2:
        return -F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
    # logits: (..., levels), target: (...)
    log_probs = torch.log_softmax(logits, dim=-1)
    return log_probs.gather(-1, target.long().unsqueeze(-1)).squeeze(-1)


def sample_pixels(
    logits: torch.Tensor, levels: int, temperature: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw integer pixel values (int64) from ``logits`` at the given temperature (0: the most likely
    value of each pixel; negative or NaN temperatures are refused)."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ArgumentError("temperature", f"must be a finite number of at least 0, got {temperature!r}")
    if temperature == 0:
        if levels == 2:
            return (logits > 0).long()
        return logits.argmax(-1)
    logits = logits / temperature
    if levels == 2:
        probs = torch.sigmoid(logits)
        return (torch.rand(probs.shape, generator=generator, device=probs.device) < probs).long()
    probs = torch.softmax(logits, dim=-1)
    flat = probs.reshape(-1, levels)
    drawn = torch.multinomial(flat, 1, generator=generator)
    return drawn.reshape(probs.shape[:-1])


def to_unit_interval(pixels: torch.Tensor, levels: int) -> torch.Tensor:
    """Integer pixel levels -> floats in [0, 1], the network's input scale."""
    return pixels.float() / (levels - 1)
