"""A row-LSTM super-resolver for digits: it reads the low-resolution image and writes the
high-resolution one row by row, with an exact conditional likelihood.

The setting of the RNN image articles pixloom starts from: an LSTM whose time steps are image rows
(the "28 steps of 28 inputs" MNIST LSTM) takes a small image and produces a large one. Here it is a
conditional autoregressive model over binary high-resolution pixels x given the low-resolution image
y = the mean of each ``factor`` x ``factor`` block of x (7x7 for factor 4, 14x14 for factor 2):

    p(x | y) = prod_t prod_j p(x[t, j] | x[<t, :], y)

Step t reads the previous high-resolution row, the low-resolution row it lies in (t // factor) and a
summary of the whole low-resolution image, and emits a Bernoulli logit per pixel of row t. So it
draws several plausible high-resolution versions of one input, and scores them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixloom.errors import ArgumentError, PixloomError
from pixloom.models.capabilities import Trainable, Upscaler
from pixloom.models.image import ImageConfig, ImageModel, check_count, check_temperature
from pixloom.nn.fused import make_fused_rnn
from pixloom.nn.pixel_output import pixel_log_prob, sample_pixels, to_unit_interval


@dataclass
class RowLSTMSRConfig(ImageConfig):  # the high-resolution images: binary, no class conditioning
    factor: int = 4  # 28 -> 7 (4) or 28 -> 14 (2)
    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 2


class RowLSTMSR(ImageModel, Trainable, Upscaler):
    name = "row-lstm-sr"
    config_class = RowLSTMSRConfig
    summary = "digit super-resolution: an LSTM writes high-resolution rows given the low-resolution image"

    def __init__(self, config: RowLSTMSRConfig):
        super().__init__(config)
        c = config
        if c.levels != 2 or c.channels != 1 or c.num_classes:
            raise PixloomError(f"{self.name} models binary one-channel images without classes (binarized digits)")
        if c.factor not in (2, 4) or c.height % c.factor or c.width % c.factor:
            raise PixloomError(f"factor must be 2 or 4 and divide the image size, got {c.factor} for {c.width}x{c.height}")
        self.low_shape = (c.height // c.factor, c.width // c.factor)
        h = c.hidden_size
        self.row_in = nn.Linear(c.width, h)
        self.low_row_in = nn.Linear(self.low_shape[1], h)
        self.summary_in = nn.Sequential(nn.Linear(self.low_shape[0] * self.low_shape[1], h), nn.Tanh())
        self.start_row = nn.Parameter(torch.zeros(h))
        self.rnn = make_fused_rnn(c.cell, h, h, c.num_layers)
        self.head = nn.Linear(h, c.width)

    @property
    def scale(self) -> int:
        return self.config.factor

    # -- the low-resolution view ---------------------------------------------------------------------
    def downscale(self, images: torch.Tensor) -> torch.Tensor:
        """Binary images (B, 1, H, W) -> their block means (B, 1, H/f, W/f), floats in [0, 1]."""
        return F.avg_pool2d(to_unit_interval(images, 2), self.config.factor)

    def _condition(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """low (B, 1, h, w) -> per-step low-resolution rows (B, H, hidden) and the summary (B, 1, hidden)."""
        rows = self.low_row_in(low[:, 0])  # (B, h, hidden)
        per_step = rows.repeat_interleave(self.config.factor, dim=1)  # (B, H, hidden)
        return per_step, self.summary_in(low.flatten(1)).unsqueeze(1)

    def _inputs(self, previous_rows: torch.Tensor, per_step: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
        b, t = previous_rows.shape[0], previous_rows.shape[1]
        x = torch.cat([self.start_row.expand(b, 1, -1), self.row_in(previous_rows)], dim=1)  # (B, t + 1, hidden)
        return x + per_step[:, : t + 1] + summary

    # -- likelihood -----------------------------------------------------------------------------------
    def conditional_log_prob(self, images: torch.Tensor, low: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x | y) in nats per image (B,), y = ``low`` or the block means of ``images``."""
        images = self.check_images(images)
        low = self.downscale(images) if low is None else self.check_low(low)
        rows = to_unit_interval(images, 2)[:, 0]  # (B, H, W)
        per_step, summary = self._condition(low)
        hidden, _ = self.rnn(self._inputs(rows[:, :-1], per_step, summary))
        return pixel_log_prob(self.head(hidden), images[:, 0], 2).flatten(1).sum(1)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        nll = -self.conditional_log_prob(batch["image"].to(self.device))
        return {"loss": nll.mean() / self.num_dims, "cond_nll_nats": nll.mean().detach()}

    # -- drawing high-resolution images ----------------------------------------------------------------
    def check_low(self, low) -> torch.Tensor:
        low = torch.as_tensor(low, device=self.device)
        if low.dim() == 2:
            low = low[None, None]
        elif low.dim() == 3:
            low = low.unsqueeze(1)
        if low.dim() != 4 or low.shape[1] != 1 or tuple(low.shape[2:]) != self.low_shape:
            h, w = self.low_shape
            raise ArgumentError("images", f"must be {w}x{h} low-resolution images for this x{self.config.factor} "
                                f"model, got shape {tuple(low.shape)}")
        if not low.is_floating_point():
            low = low.float() / 255.0
        if not bool(torch.isfinite(low).all()) or float(low.min()) < 0 or float(low.max()) > 1:
            raise ArgumentError("images", "must hold intensities in [0, 1] (floats) or 0..255 (integers)")
        return low.float()

    @torch.no_grad()
    def sample_given(self, low, n: int = 1, temperature: float = 1.0, generator=None) -> torch.Tensor:
        """``n`` high-resolution draws for each low-resolution image: uint8 (B, n, 1, H, W)."""
        low = self.check_low(low)
        n, temperature = check_count(n), check_temperature(temperature)
        b = low.shape[0]
        low = low.repeat_interleave(n, 0)
        c = self.config
        per_step, summary = self._condition(low)
        images = torch.zeros(b * n, c.height, c.width, dtype=torch.uint8, device=self.device)
        state = None
        x = self.start_row.expand(b * n, 1, -1) + per_step[:, :1] + summary
        for t in range(c.height):
            out, state = self.rnn(x, state)
            images[:, t] = sample_pixels(self.head(out[:, 0]), 2, temperature, generator).to(torch.uint8)
            if t + 1 < c.height:
                x = self.row_in(images[:, t : t + 1].float()) + per_step[:, t + 1 : t + 2] + summary
        return images.view(b, n, 1, c.height, c.width)

    def upscale(self, images, n: int = 1, temperature: float = 1.0, generator=None) -> torch.Tensor:
        """Low-resolution digits (floats in [0, 1] or uint8 0..255; (h, w), (B, h, w) or (B, 1, h, w);
        or picture files / PIL images, read as grey) -> ``n`` high-resolution draws each, uint8
        levels (B, n, 1, H, W)."""
        if not isinstance(images, torch.Tensor):
            images = self._read_low(images)
        return self.sample_given(images, n, temperature, generator)

    def _read_low(self, images) -> torch.Tensor:
        from pixloom.data.images import picture_to_rgb, read_rgb

        items = images if isinstance(images, (list, tuple)) else [images]
        if not items:
            raise ArgumentError("images", "is empty")
        arrays = []
        for item in items:
            if isinstance(item, torch.Tensor):
                return torch.cat([self.check_low(i) for i in items])
            rgb = read_rgb(item, background="black") if isinstance(item, (str, Path)) \
                else picture_to_rgb(item, background="black")
            arrays.append(rgb.astype(np.float64).mean(-1) / 255.0)
        return self.check_low(torch.tensor(np.stack(arrays), dtype=torch.float32).unsqueeze(1))
