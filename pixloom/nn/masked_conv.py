"""Masked convolutions: the causal convolutions of PixelRNN / PixelCNN.

van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks" (ICML), Sec. 3.4
"Masked Convolution": a convolution whose kernel is zeroed wherever it would read a pixel that comes
at or after the centre pixel in raster order, so that a network built from them is autoregressive:

    mask A (first layer)   the centre pixel is hidden,  out(i, j) sees x(< (i, j))
    mask B (later layers)  the centre pixel is visible, out(i, j) sees x(<= (i, j))

With ``channels = 3`` the colours of one pixel are predicted in the order R -> G -> B: the feature maps
are split into 3 groups (feature ``f`` belongs to group ``f % 3``; inputs of the first layer are the
R, G and B planes themselves) and, at the centre pixel only, output group ``k`` sees the input groups
``< k`` (mask A) or ``<= k`` (mask B). Pixels before the centre are seen in full.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair


def colour_groups(features: int, channels: int, blocks: int = 1) -> torch.Tensor:
    """Group (0 .. channels-1) of each of ``features`` feature maps.

    ``blocks > 1`` treats the features as ``blocks`` equal blocks grouped the same way (the 4 gates
    i, f, o, g of an LSTM: unit ``u`` of every gate belongs to the group of hidden unit ``u``).
    """
    if features % blocks:
        raise ValueError(f"{features} features do not split into {blocks} equal blocks")
    return (torch.arange(features) % (features // blocks)) % channels


def causal_mask(out_channels: int, in_channels: int, kernel_size, mask_type: str,
                channels: int = 1, out_blocks: int = 1) -> torch.Tensor:
    """The 0/1 mask (out, in, kh, kw) of a masked convolution (see the module docstring)."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    kh, kw = _pair(kernel_size)
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"masked convolutions need odd kernel sizes, got {kh}x{kw}")
    ci, cj = kh // 2, kw // 2
    mask = torch.zeros(out_channels, in_channels, kh, kw)
    mask[:, :, :ci, :] = 1  # rows above the centre
    mask[:, :, ci, :cj] = 1  # left of the centre, same row
    out_group = colour_groups(out_channels, channels, out_blocks)[:, None]
    in_group = colour_groups(in_channels, channels)[None, :]
    mask[:, :, ci, cj] = (in_group < out_group if mask_type == "A" else in_group <= out_group).float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """A ``kernel_size`` convolution ("same" padding, stride 1) masked to see only the past.

    Args:
        in_channels, out_channels, kernel_size: as for ``nn.Conv2d`` (odd kernel sizes only).
        mask_type: ``"A"`` (centre pixel hidden; first layer) or ``"B"`` (centre visible).
        channels: colour channels of the image (3: R -> G -> B masking at the centre pixel).
        out_blocks: how many equal blocks the outputs form, each grouped alike (4 for LSTM gates).

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, mask_type: str,
                 channels: int = 1, out_blocks: int = 1, bias: bool = True):
        kh, kw = _pair(kernel_size)
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2), bias=bias)
        self.mask_type = mask_type
        self.channels = channels
        mask = causal_mask(out_channels, in_channels, (kh, kw), mask_type, channels, out_blocks)
        self.register_buffer("mask", mask, persistent=False)  # rebuilt from the config, never saved
        # The rows below the centre (and, for one-row kernels, the columns right of it) are always
        # masked: forward convolves with the rest only, padding the input asymmetrically instead.
        ci, cj = kh // 2, kw // 2
        self.support = (ci + 1, cj + 1 if kh == 1 else kw)
        self.causal_padding = (cj, 0 if kh == 1 else cj, ci, 0)  # F.pad order: left, right, top, bottom

    @property
    def masked_weight(self) -> torch.Tensor:
        """The kernel with the future zeroed, (out, in, kh, kw)."""
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = self.support
        weight = self.masked_weight[:, :, :rows, :cols]
        if any(self.causal_padding):
            x = F.pad(x, self.causal_padding)
        return F.conv2d(x, weight, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type}, channels={self.channels}"
