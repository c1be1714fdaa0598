"""The one resizer pixloom uses for super-resolution: Pillow's bicubic (Keys' cubic with a = -0.5, as
MATLAB's ``imresize``; antialiased when shrinking). Low-resolution inputs are made by
:func:`downscale` and stored as 8 bits, as a picture would be; :func:`upscale_bicubic` is the bicubic
baseline every figure is compared with, and the base the super-resolvers add their residual to.

With it the bicubic baseline on Set5 is 33.67 / 30.40 / 28.43 dB PSNR-Y at x2 / x3 / x4, against the
literature's MATLAB figures 33.66 / 30.39 / 28.42; torch's bicubic (a = -0.75) gives 33.97 / 30.63 /
28.63 on the same images (docs/benchmarks.md, "Super-resolution").
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def downscale(images: torch.Tensor, scale: int) -> torch.Tensor:
    """uint8 images (B, C, H, W), H and W multiples of ``scale`` -> uint8 (B, C, H/scale, W/scale)."""
    b, c, h, w = images.shape
    out = torch.empty(b, c, h // scale, w // scale, dtype=torch.uint8)
    for i in range(b):
        for k in range(c):
            picture = Image.fromarray(images[i, k].cpu().numpy())
            out[i, k] = torch.from_numpy(np.array(picture.resize((w // scale, h // scale), Image.BICUBIC)))
    return out


def upscale_bicubic(images: torch.Tensor, scale: int) -> torch.Tensor:
    """Float images (B, C, h, w) -> bicubic (B, C, h*scale, w*scale) in float32, same value range, not
    clamped (so that a model's residual is added to the exact bicubic values)."""
    b, c, h, w = images.shape
    source = images.detach().float().cpu().numpy()
    out = np.empty((b, c, h * scale, w * scale), dtype=np.float32)
    for i in range(b):
        for k in range(c):
            out[i, k] = np.asarray(Image.fromarray(source[i, k], mode="F").resize((w * scale, h * scale), Image.BICUBIC))
    return torch.from_numpy(out).to(images.device)
