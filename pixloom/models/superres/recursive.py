"""A recurrent photo super-resolver: one residual unit applied T times with shared weights, in
low-resolution space.

Tai, Yang and Liu (2017), "Image Super-Resolution via Deep Recursive Residual Network" (DRRN, CVPR):
a recursive block of residual units whose weights are shared across the recursions, each recursion
starting again from the block's input (multi-path local residual learning):

    H_0 = f_in(x),   H_t = H_0 + U(H_{t-1})  for t = 1..T,   U(h) = W_2 * relu(W_1 * relu(h))

DRRN runs this at high resolution, on the bicubic-upscaled input; at 2 CPU cores that costs ~8 s per
training step and ~19 s per 512x512 output, so here the recursion runs on the low-resolution input
and a pixel-shuffle layer (Shi et al. 2016, ESPCN) makes the high-resolution residual, which is added
to the bicubic upscaling (residual learning of VDSR, Kim et al. 2016). ``recursions = 1`` is the same
network without recurrence (the ablation of the docs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pixloom.models.superres.base import PhotoSuperResolver, check_scale, conv3x3, pixel_shuffle_tail


@dataclass
class RecurrentSRConfig:
    scale: int = 2  # 2, 3 or 4
    features: int = 64  # channels of the recurrent state
    recursions: int = 8  # T: how often the shared unit is applied
    convs_per_unit: int = 2  # 3x3 convolutions inside the shared unit
    # training data (pixloom.data.patches): low-resolution patch side, patches per photo and epoch,
    # and the factor the photos are shrunk by before patches are cut
    patch_size: int = 32
    patches_per_photo: int = 4
    prescale: float = 1.0


class RecurrentSR(PhotoSuperResolver):
    name = "recurrent-sr"
    config_class = RecurrentSRConfig
    summary = "photo super-resolution: a residual unit applied T times with shared weights (DRRN) at low resolution"

    def __init__(self, config: RecurrentSRConfig):
        check_scale(config)
        super().__init__(config)
        f = config.features
        self.head = conv3x3(1, f)
        self.unit = nn.ModuleList(conv3x3(f, f) for _ in range(config.convs_per_unit))
        self.tail = pixel_shuffle_tail(f, config.scale)

    @property
    def receptive_radius(self) -> int:
        return 2 + self.config.recursions * self.config.convs_per_unit

    def residual(self, lr: torch.Tensor) -> torch.Tensor:
        h0 = self.head(lr - 0.5)
        h = h0
        for _ in range(self.config.recursions):
            u = h
            for conv in self.unit:
                u = conv(torch.relu(u))
            h = h0 + u
        return self.tail(torch.relu(h))


@dataclass
class PlainSRConfig:
    scale: int = 2
    features: int = 32
    layers: int = 8  # distinct 3x3 convolutions (no weight sharing)
    patch_size: int = 32  # training data, as in RecurrentSRConfig
    patches_per_photo: int = 4
    prescale: float = 1.0


class PlainSR(PhotoSuperResolver):
    """The non-recurrent reference: a stack of distinct convolutions at low resolution with a residual
    connection around it, the same pixel-shuffle tail and the same residual on bicubic. Sized to match
    ``recurrent-sr``'s parameter count (``features`` 32 with 8 layers ~ one 64-channel unit of two convs)."""

    name = "plain-sr"
    config_class = PlainSRConfig
    summary = "photo super-resolution: a plain stack of distinct convolutions at low resolution (non-recurrent reference)"

    def __init__(self, config: PlainSRConfig):
        check_scale(config)
        super().__init__(config)
        f = config.features
        self.head = conv3x3(1, f)
        self.body = nn.ModuleList(conv3x3(f, f) for _ in range(config.layers))
        self.tail = pixel_shuffle_tail(f, config.scale)

    @property
    def receptive_radius(self) -> int:
        return 2 + self.config.layers

    def residual(self, lr: torch.Tensor) -> torch.Tensor:
        h0 = self.head(lr - 0.5)
        h = h0
        for conv in self.body:
            h = conv(torch.relu(h))
        return self.tail(torch.relu(h0 + h))
