"""What the photo super-resolvers share: the luma channel, residual learning on bicubic, the training
loss, and upscaling pictures of any size in overlapping tiles.

The networks work on the luma channel Y of ITU-R BT.601 (as SRCNN, VDSR, DRCN and DRRN do, and as the
figures are scored): a colour picture is split into Y, Cb, Cr; Y goes through the network, Cb and Cr
are upscaled bicubically; a grey picture stays grey. Each network predicts the difference between the
high-resolution Y and the bicubic upscaling of the low-resolution Y (residual learning, Kim et al.
2016). Bicubic is Pillow's (:mod:`pixloom.data.resize`).

Training batches are ``{"lr": uint8 (B, 1, h, w), "hr": uint8 (B, 1, h*s, w*s)}``
(:mod:`pixloom.data.patches`); the loss is the mean absolute error on [0, 1] values (L1, as EDSR),
and the batch's PSNR of the model and of bicubic are logged beside it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from pixloom.data.images import picture_to_rgb, read_rgb
from pixloom.data.resize import upscale_bicubic
from pixloom.errors import ArgumentError, PixloomError
from pixloom.models.base import PixloomModel
from pixloom.models.capabilities import Trainable, Upscaler

BT601 = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0
BT601_OFFSET = np.array([16.0, 128.0, 128.0])
MIN_SIDE = 4  # pixels: smaller inputs are refused
BAND = 256  # output rows converted back to RGB at a time


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float YCbCr (H, W, 3) of BT.601 (Y in [16, 235])."""
    return rgb.astype(np.float64) @ BT601.T + BT601_OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Float YCbCr (H, W, 3) -> uint8 RGB (H, W, 3), rounded and clipped."""
    rgb = (ycbcr - BT601_OFFSET) @ np.linalg.inv(BT601).T
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def batch_psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean PSNR (dB) over a batch of [0, 1] images."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1).clamp(min=1e-10)
    return (10 * torch.log10(1.0 / mse)).mean()


class PhotoSuperResolver(PixloomModel, Trainable, Upscaler):
    """Base of the photo super-resolvers: subclasses implement ``residual(lr)`` for ``lr`` in [0, 1],
    (B, 1, h, w) -> (B, 1, h*s, w*s), and ``receptive_radius`` (low-resolution pixels that one output
    pixel depends on, each side), which sets the tiles' overlap so that tiling changes nothing."""

    tile: ClassVar[int] = 128  # low-resolution pixels per tile side

    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def receptive_radius(self) -> int:
        raise NotImplementedError

    def residual(self, lr: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """Low-resolution Y in [0, 1] (B, 1, h, w) -> high-resolution Y in [0, 1]-ish (not clamped)."""
        return upscale_bicubic(lr, self.scale) + self.residual(lr)

    # -- training ------------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        lr = batch["lr"].to(self.device).float() / 255.0
        hr = batch["hr"].to(self.device).float() / 255.0
        if hr.shape[-2:] != (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale):
            raise PixloomError(f"a x{self.scale} model needs high-resolution patches {self.scale} times the "
                               f"low-resolution ones, got {tuple(lr.shape[-2:])} and {tuple(hr.shape[-2:])}")
        base = upscale_bicubic(lr, self.scale)
        out = base + self.residual(lr)
        loss = (out - hr).abs().mean()
        with torch.no_grad():
            model_psnr = batch_psnr(out.clamp(0, 1), hr)
            bicubic_psnr = batch_psnr(base.clamp(0, 1), hr)
        return {"loss": loss, "psnr": model_psnr, "bicubic_psnr": bicubic_psnr, "gain_db": model_psnr - bicubic_psnr}

    # -- upscaling pictures ---------------------------------------------------------------------------
    @torch.no_grad()
    def upscale_y(self, y: np.ndarray) -> np.ndarray:
        """Luma (h, w) as floats in [0, 255] -> (h*s, w*s) floats, in tiles of ``tile`` low-resolution
        pixels with ``receptive_radius`` pixels of overlap (memory bounded by the tile size)."""
        h, w = y.shape
        s, tile, pad = self.scale, self.tile, self.receptive_radius
        out = np.empty((h * s, w * s), dtype=np.float32)
        source = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)) / 255.0
        was_training = self.training
        self.eval()
        try:
            for top in range(0, h, tile):
                for left in range(0, w, tile):
                    bottom, right = min(top + tile, h), min(left + tile, w)
                    t0, l0 = max(0, top - pad), max(0, left - pad)
                    t1, l1 = min(h, bottom + pad), min(w, right + pad)
                    piece = source[t0:t1, l0:l1][None, None].to(self.device)
                    result = self(piece)[0, 0].cpu()
                    out[top * s:bottom * s, left * s:right * s] = result[
                        (top - t0) * s:(bottom - t0) * s, (left - l0) * s:(right - l0) * s].numpy() * 255.0
        finally:
            self.train(was_training)
        return out

    def upscale(self, images, progress: bool = False) -> list[torch.Tensor]:
        """High-resolution versions of ``images`` (file paths, PIL images, numpy arrays or uint8 tensors
        (C, H, W) / (B, C, H, W); colour or grey, any size): a list of uint8 tensors (C, H*s, W*s), each
        grey (C = 1) where its input was grey, else RGB."""
        items = _as_list(images)
        if not items:
            raise ArgumentError("images", "is empty")
        pictures = [_picture(item) for item in items]  # every input is checked before any work
        out = []
        for rgb, grey in pictures:
            h, w = rgb.shape[:2]
            if min(h, w) < MIN_SIDE:
                raise ArgumentError("images", f"must be at least {MIN_SIDE}x{MIN_SIDE} pixels, got {w}x{h}")
            ycc = rgb_to_ycbcr(rgb)
            y = self.upscale_y(ycc[..., 0])
            if grey:
                value = np.clip(np.round((y - 16.0) * 255.0 / 219.0), 0, 255).astype(np.uint8)
                out.append(torch.from_numpy(value)[None])
                continue
            chroma = upscale_bicubic(torch.from_numpy(ycc[..., 1:].transpose(2, 0, 1).copy())[None].float(),
                                     self.scale)[0].numpy().transpose(1, 2, 0)
            rgb_out = np.empty(chroma.shape[:2] + (3,), dtype=np.uint8)
            for top in range(0, rgb_out.shape[0], BAND):  # in bands of rows: float copies stay small
                band = np.concatenate([y[top:top + BAND, :, None], chroma[top:top + BAND]], axis=-1)
                rgb_out[top:top + BAND] = ycbcr_to_rgb(band)
            out.append(torch.from_numpy(rgb_out).permute(2, 0, 1).contiguous())
        return out


def _as_list(images) -> list:
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        return list(images)
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]


def _picture(item) -> tuple[np.ndarray, bool]:
    """One input -> (uint8 RGB (H, W, 3), whether it was grey)."""
    from pathlib import Path

    if isinstance(item, torch.Tensor):
        if item.dim() != 3 or item.shape[0] not in (1, 3) or item.dtype != torch.uint8:
            raise ArgumentError("images", f"tensors must be uint8 (1 or 3, H, W), got {item.dtype} {tuple(item.shape)}")
        array = item.permute(1, 2, 0).cpu().numpy()
        rgb = np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array
        return np.ascontiguousarray(rgb), item.shape[0] == 1
    if isinstance(item, (str, Path)):
        rgb = read_rgb(item)
    else:
        rgb = picture_to_rgb(item)
    grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    return rgb, grey


def conv3x3(c_in: int, c_out: int) -> torch.nn.Conv2d:
    return torch.nn.Conv2d(c_in, c_out, 3, padding=1)


def pixel_shuffle_tail(features: int, scale: int) -> torch.nn.Sequential:
    """conv to scale^2 channels, then pixel shuffle (Shi et al. 2016): (B, F, h, w) -> (B, 1, h*s, w*s).
    The conv starts at zero, so an untrained model is exactly bicubic."""
    conv = conv3x3(features, scale * scale)
    torch.nn.init.zeros_(conv.weight)
    torch.nn.init.zeros_(conv.bias)
    return torch.nn.Sequential(conv, torch.nn.PixelShuffle(scale))


def check_scale(config) -> None:
    """One-line errors for a scale or training-data setting a super-resolver cannot use."""
    if config.scale not in (2, 3, 4):
        raise PixloomError(f"scale must be 2, 3 or 4, got {config.scale}")
    if not 0 < config.prescale <= 1:
        raise PixloomError(f"prescale must lie in (0, 1], got {config.prescale}")

