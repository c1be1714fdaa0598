"""Row LSTM generator: image rows as time steps.

The recurrent image model of the seed articles on RNN image generation (e.g. the "28 time steps of
28 inputs" MNIST LSTM), turned into an exact likelihood model: at step t the network reads rows
< t and emits a distribution for row t; the pixels of one row are independent given the rows above.

    p(x) = prod_t prod_j p(x[t, j] | x[<t, :])

Not to be confused with PixelRNN's Row LSTM layer (van den Oord et al. 2016), which is a
convolutional layer and lives in ``pixloom.models.autoregressive.pixel_rnn``.
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
class RowLSTMConfig(ImageConfig):
    cell: str = "lstm"  # rnn | lstm | gru
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.0


class RowLSTM(ImageGenerator, Completer):
    name = "row-lstm"
    config_class = RowLSTMConfig
    summary = "rows as time steps (28 steps of 28 inputs); pixels of a row independent given the rows above"

    def __init__(self, config: RowLSTMConfig):
        super().__init__(config)
        row_size = config.channels * config.width
        self.out_per_pixel = logits_per_pixel(config.levels)
        self.input_proj = nn.Linear(row_size, config.hidden_size)
        self.start_row = nn.Embedding(1, config.hidden_size)  # learned input for row 0 (a module: private
        nn.init.zeros_(self.start_row.weight)                  # training needs its per-example gradients)
        self.class_embedding = nn.Embedding(config.num_classes, config.hidden_size) if config.num_classes else None
        self.rnn = make_fused_rnn(config.cell, config.hidden_size, config.hidden_size, config.num_layers, config.dropout)
        self.head = nn.Linear(config.hidden_size, row_size * self.out_per_pixel)

    def _inputs(self, previous_rows: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
        """previous_rows: (B, T, C*W) floats -> RNN inputs (B, T+1, hidden), step 0 = start token."""
        b = previous_rows.shape[0]
        start = self.start_row(torch.zeros(b, 1, dtype=torch.long, device=previous_rows.device))
        x = torch.cat([start, self.input_proj(previous_rows)], dim=1)
        if self.class_embedding is not None:
            x = x + self.class_embedding(label).unsqueeze(1)
        return x

    def _row_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, hidden) -> logits (B, T, C, W[, levels])."""
        c = self.config
        logits = self.head(hidden).view(*hidden.shape[:2], c.channels, c.width, self.out_per_pixel)
        return logits.squeeze(-1) if self.out_per_pixel == 1 else logits

    def log_prob(self, image, label=None):
        c = self.config
        image = image.to(self.device)
        label = self.check_label(label, image.shape[0]) if c.num_classes else None
        rows = to_unit_interval(image, c.levels).permute(0, 2, 1, 3).reshape(image.shape[0], c.height, -1)
        hidden, _ = self.rnn(self._inputs(rows[:, :-1], label))  # (B, H, hidden)
        logits = self._row_logits(hidden)  # (B, H, C, W[, L])
        target = image.permute(0, 2, 1, 3)  # (B, H, C, W)
        return pixel_log_prob(logits, target, c.levels).flatten(1).sum(1)

    @torch.no_grad()
    def complete(self, images, known_rows=None, mask=None, temperature=1.0, label=None, generator=None):
        """Keep the known pixels (top ``known_rows`` rows, or where ``mask`` is True) and sample the
        others row by row, each row given every row above it (known pixels below are not seen)."""
        images = self.prepare_images(images)
        known = self.known_pixels(images, known_rows, mask)
        return self._generate(images, known, check_temperature(temperature), label, generator)

    @torch.no_grad()
    def sample(self, n, temperature=1.0, label=None, generator=None):
        blank = torch.zeros(check_count(n), *self.image_shape, dtype=torch.uint8, device=self.device)
        known = torch.zeros_like(blank, dtype=torch.bool)
        return self._generate(blank, known, check_temperature(temperature), label, generator)

    def _generate(self, images, known, temperature, label, generator):
        c = self.config
        n = images.shape[0]
        label = self.check_label(label, n)
        images = images.clone()
        unknown_rows = (~known).any(dim=(0, 1, 3)).nonzero()
        known_rows = int(unknown_rows[0]) if len(unknown_rows) else c.height
        if known_rows == c.height:
            return images
        rows = to_unit_interval(images, c.levels).permute(0, 2, 1, 3).reshape(n, c.height, -1)
        # Read the fully known rows in one call; the last step's output predicts the first unknown row.
        inputs = self._inputs(rows[:, :known_rows], label)  # (B, known_rows + 1, hidden)
        hidden, state = self.rnn(inputs)
        step_out = hidden[:, -1:]
        for t in range(known_rows, c.height):
            logits = self._row_logits(step_out)[:, 0]  # (B, C, W[, L])
            drawn = sample_pixels(logits, c.levels, temperature, generator).to(torch.uint8)
            images[:, :, t] = torch.where(known[:, :, t], images[:, :, t], drawn)
            if t + 1 == c.height:
                break
            row = to_unit_interval(images[:, :, t], c.levels).reshape(n, 1, -1)
            x = self.input_proj(row)
            if self.class_embedding is not None:
                x = x + self.class_embedding(label).unsqueeze(1)
            step_out, state = self.rnn(x, state)
        return images
