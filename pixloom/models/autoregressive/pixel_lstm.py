"""Pixel LSTM/GRU: a raster-scan recurrent network, one pixel per time step.

An exact autoregressive model over pixels in raster order (Graves 2013 style sequence modelling
applied to images; the pixel-level LSTM baselines of Lamb et al. 2016 "Professor Forcing" and
Shabanian et al. 2017 "Variational Bi-LSTMs" on binarized MNIST):

    p(x) = prod_i p(x_i | x_<i),  i over the H*W pixels in raster order.

Step i reads the previous pixel and learned embeddings of pixel i's row and column, so the network
knows where it is on the canvas. For colour images the channels of one pixel are predicted
independently given the previous pixels (still an exact likelihood).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pixloom.models.capabilities import Completer
from pixloom.models.image import ImageConfig, ImageGenerator, check_count, check_temperature
from pixloom.nn.fused import make_fused_rnn
from pixloom.nn.pixel_output import logits_per_pixel, pixel_log_prob, sample_pixels, to_unit_interval


@dataclass
class PixelLSTMConfig(ImageConfig):
    cell: str = "lstm"  # rnn | lstm | gru
    hidden_size: int = 128
    num_layers: int = 2
    dropout: float = 0.0


class PixelLSTM(ImageGenerator, Completer):
    name = "pixel-lstm"
    config_class = PixelLSTMConfig
    summary = "raster scan, one pixel per time step (cell=lstm|gru|rnn); exact autoregressive likelihood"

    def __init__(self, config: PixelLSTMConfig):
        super().__init__(config)
        e = config.hidden_size
        self.out_per_pixel = logits_per_pixel(config.levels)
        self.pixel_proj = nn.Linear(config.channels, e)
        # Embedding modules (not bare parameters), so that private training gets per-example gradients
        self.start_pixel = nn.Embedding(1, e)
        self.row_embedding = nn.Embedding(config.height, e)
        self.col_embedding = nn.Embedding(config.width, e)
        nn.init.zeros_(self.start_pixel.weight)
        nn.init.normal_(self.row_embedding.weight, std=0.1)
        nn.init.normal_(self.col_embedding.weight, std=0.1)
        self.class_embedding = nn.Embedding(config.num_classes, e) if config.num_classes else None
        self.rnn = make_fused_rnn(config.cell, e, e, config.num_layers, config.dropout)
        self.head = nn.Linear(e, config.channels * self.out_per_pixel)

    def _position(self, b: int, start: int, stop: int) -> torch.Tensor:
        """(B, stop - start, hidden): embedding of the row plus the column of pixels start..stop-1 in
        raster order."""
        index = torch.arange(start, stop, device=self.device)[None].expand(b, -1)
        return self.row_embedding(index // self.config.width) + self.col_embedding(index % self.config.width)

    def _inputs(self, pixels: torch.Tensor, label) -> torch.Tensor:
        """pixels: (B, T, C) floats -> inputs (B, T, hidden) predicting pixels 0..T-1 from pixels < T-1."""
        b = pixels.shape[0]
        start = self.start_pixel(torch.zeros(b, 1, dtype=torch.long, device=self.device))
        previous = torch.cat([start, self.pixel_proj(pixels[:, :-1])], dim=1)
        x = previous + self._position(b, 0, previous.shape[1])
        if self.class_embedding is not None:
            x = x + self.class_embedding(label).unsqueeze(1)
        return x

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, hidden) -> logits (B, T, C[, levels])."""
        logits = self.head(hidden).view(*hidden.shape[:2], self.config.channels, self.out_per_pixel)
        return logits.squeeze(-1) if self.out_per_pixel == 1 else logits

    def _raster(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, H*W, C)."""
        return image.flatten(2).transpose(1, 2)

    def log_prob(self, image, label=None):
        c = self.config
        image = image.to(self.device)
        label = self.check_label(label, image.shape[0]) if c.num_classes else None
        target = self._raster(image)  # (B, HW, C)
        hidden, _ = self.rnn(self._inputs(to_unit_interval(target, c.levels), label))
        return pixel_log_prob(self._logits(hidden), target, c.levels).flatten(1).sum(1)

    @torch.no_grad()
    def sample(self, n, temperature=1.0, label=None, generator=None):
        blank = torch.zeros(check_count(n), *self.image_shape, dtype=torch.uint8, device=self.device)
        known = torch.zeros(n, *self.image_shape, dtype=torch.bool, device=self.device)
        return self._generate(blank, known, check_temperature(temperature), label, generator)

    @torch.no_grad()
    def complete(self, images, known_rows: int | None = None, mask: torch.Tensor | None = None,
                 temperature: float = 1.0, label=None, generator=None):
        """Keep the known pixels (top ``known_rows`` rows, or where ``mask`` is True) and sample
        the others in raster order, each conditioned on every pixel before it."""
        images = self.prepare_images(images)
        known = self.known_pixels(images, known_rows, mask)
        return self._generate(images, known, check_temperature(temperature), label, generator)

    def _generate(self, images, known, temperature, label, generator):
        c = self.config
        n = images.shape[0]
        label = self.check_label(label, n)
        pixels = self._raster(images).clone()  # (B, HW, C) integer levels
        known = self._raster(known)
        num_pixels = pixels.shape[1]
        unknown_steps = (~known).any(dim=(0, 2)).nonzero()
        first = int(unknown_steps[0]) if len(unknown_steps) else num_pixels
        if first == num_pixels:
            return images.clone()
        position = self._position(1, 0, num_pixels)[0]
        # Teacher-force the fully known prefix in one call; its last output predicts pixel `first`.
        inputs = self._inputs(to_unit_interval(pixels[:, : first + 1], c.levels), label)
        hidden, state = self.rnn(inputs)
        step_out = hidden[:, -1:]
        class_bias = self.class_embedding(label).unsqueeze(1) if self.class_embedding is not None else 0
        for i in range(first, num_pixels):
            drawn = sample_pixels(self._logits(step_out)[:, 0], c.levels, temperature, generator)
            pixels[:, i] = torch.where(known[:, i], pixels[:, i], drawn.to(pixels.dtype))
            if i + 1 == num_pixels:
                break
            x = self.pixel_proj(to_unit_interval(pixels[:, i : i + 1], c.levels)) + position[i + 1] + class_bias
            step_out, state = self.rnn(x, state)
        return pixels.transpose(1, 2).reshape(n, *self.image_shape)
