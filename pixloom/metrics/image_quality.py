"""Image-quality figures of super-resolution, by the literature's convention.

PSNR and SSIM are computed on the luma channel Y of ITU-R BT.601 (``Y = 16 + 65.481 R + 128.553 G +
24.966 B`` for RGB in [0, 1], so Y lies in [16, 235]) with the data range 255, after cropping both
images to a multiple of the scale and shaving ``scale`` pixels from every border (as the SRCNN, VDSR,
DRCN and DRRN papers' MATLAB code does). SSIM is Wang, Bovik, Sheikh and Simoncelli (2004) with an
11x11 Gaussian window of sigma 1.5 and K1 = 0.01, K2 = 0.03, population statistics: the same numbers
as scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255)`` (a test holds them equal).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def rgb_to_y(rgb: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 RGB (H, W, 3) or grey (H, W) -> BT.601 luma Y in [16, 235] as float64 (H, W). A grey
    picture is taken as R = G = B."""
    array = rgb.numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb)
    array = array.astype(np.float64) / 255.0
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return 16.0 + array @ np.array([65.481, 128.553, 24.966])


def crop_to_scale(image: np.ndarray, scale: int) -> np.ndarray:
    """The top-left part of ``image`` whose height and width are multiples of ``scale``."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def shave(image: np.ndarray, border: int) -> np.ndarray:
    return image[border:-border, border:-border] if border > 0 else image


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB of two float arrays of the same shape (inf when equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM of two grey float arrays (H, W): 11x11 Gaussian window, sigma 1.5, over the region
    where the window fits (as scikit-image crops its border of 5 pixels)."""
    x = torch.as_tensor(np.asarray(a, np.float64))[None, None]
    y = torch.as_tensor(np.asarray(b, np.float64))[None, None]
    window = _gaussian_window()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(t):
        return F.conv2d(t, window)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return float(s.mean())


def sr_scores(output: np.ndarray, truth: np.ndarray, scale: int) -> dict[str, float]:
    """``psnr_y`` and ``ssim_y`` of an upscaled picture against the ground truth (uint8 RGB or grey,
    same size), by the convention of the module docstring."""
    if output.shape[:2] != truth.shape[:2]:
        raise ValueError(f"output {output.shape[:2]} and ground truth {truth.shape[:2]} differ in size")
    y_out = shave(crop_to_scale(rgb_to_y(output), scale), scale)
    y_true = shave(crop_to_scale(rgb_to_y(truth), scale), scale)
    return {"psnr_y": psnr(y_out, y_true), "ssim_y": ssim(y_out, y_true)}
