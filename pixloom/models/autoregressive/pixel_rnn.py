"""PixelRNN: masked convolutions and spatial LSTMs (Row LSTM or Diagonal BiLSTM).

van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks" (ICML,
arXiv:1601.06759). An exact autoregressive model over pixels in raster order and, within a pixel,
over its colours in the order R -> G -> B:

    p(x) = prod_i p(x_i,R | x_<i) p(x_i,G | x_<i, x_i,R) p(x_i,B | x_<i, x_i,R, x_i,G)

Architecture (Table 1 of the paper), with h = ``hidden``:

    7x7 convolution, mask A                          -> 2h features
    ``num_layers`` x [Row LSTM | Diagonal BiLSTM] (h units) + 1x1 convolution back to 2h, residual
    2 x [ReLU, 1x1 convolution, mask B]              -> 1 logit (levels = 2) or ``levels`` logits
                                                        per colour channel

Causality comes from the masks (``pixloom.nn.masked_conv``) and the spatial LSTMs' own structure
(``pixloom.nn.spatial_lstm``). Sampling is sequential by nature; ``sample``/``complete`` carry every
layer's recurrent state and compute only the column of the new pixel (``_CachedSampler``), while
``sample_naive`` reruns the whole network once per pixel and channel (the reference it must equal).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixloom.errors import PixloomError
from pixloom.models.capabilities import Completer
from pixloom.models.image import ImageConfig, ImageGenerator, check_count, check_temperature
from pixloom.nn.masked_conv import MaskedConv2d
from pixloom.nn.pixel_output import logits_per_pixel, pixel_log_prob, sample_pixels, to_unit_interval
from pixloom.nn.spatial_lstm import DiagonalBiLSTMLayer, RowLSTMLayer

VARIANTS = ("row_lstm", "diagonal_bilstm")
FIRST_KERNEL = 7  # the mask-A input convolution is 7x7 in the paper


@dataclass
class PixelRNNConfig(ImageConfig):  # class conditioning: a learned bias per class on the first layer
    variant: str = "row_lstm"  # row_lstm | diagonal_bilstm
    num_layers: int = 7
    hidden: int = 16  # h: LSTM units per layer; the residual stream carries 2h features
    row_kernel: int = 3  # Row LSTM: width k of its input-to-state and state-to-state kernels
    output_hidden: int = 0  # features of the 1x1 output layers (0: 2 * hidden)
    learn_initial_state: bool = False  # Row LSTM: learned (h, c) above the first row


def check_config(c: PixelRNNConfig) -> None:
    """One-line errors for configurations the model cannot build."""
    if c.variant not in VARIANTS:
        raise PixloomError(f"unknown PixelRNN variant '{c.variant}'; choose {' or '.join(VARIANTS)}")
    if min(c.channels, c.height, c.width, c.hidden, c.num_layers) < 1 or c.levels < 2 or c.output_hidden < 0:
        raise PixloomError("PixelRNN needs channels, height, width, hidden, num_layers >= 1 and levels >= 2")
    if c.row_kernel < 1 or c.row_kernel % 2 == 0:
        raise PixloomError(f"row_kernel must be a positive odd number, got {c.row_kernel}")
    if c.learn_initial_state and c.variant != "row_lstm":
        raise PixloomError("learn_initial_state applies to the row_lstm variant only")


class PixelRNN(ImageGenerator, Completer):
    name = "pixel-rnn"
    config_class = PixelRNNConfig
    summary = "PixelRNN (van den Oord et al. 2016): masked convs + Row LSTM or Diagonal BiLSTM layers"

    def __init__(self, config: PixelRNNConfig):
        check_config(config)
        super().__init__(config)
        c, h = config.channels, config.hidden
        width, out_hidden = 2 * h, config.output_hidden or 2 * h
        self.out_per_pixel = logits_per_pixel(config.levels)
        self.input_conv = MaskedConv2d(c, width, FIRST_KERNEL, "A", channels=c)
        self.class_embedding = nn.Embedding(config.num_classes, width) if config.num_classes else None
        if config.variant == "row_lstm":
            make = lambda: RowLSTMLayer(width, h, config.row_kernel, c, config.learn_initial_state)  # noqa: E731
        else:
            make = lambda: DiagonalBiLSTMLayer(width, h, c)  # noqa: E731
        self.layers = nn.ModuleList(make() for _ in range(config.num_layers))
        self.residual = nn.ModuleList(MaskedConv2d(h, width, 1, "B", channels=c) for _ in range(config.num_layers))
        self.output_conv = MaskedConv2d(width, out_hidden, 1, "B", channels=c)
        # Logit f belongs to colour f % C (the mask's grouping): f = level * C + colour.
        self.head = MaskedConv2d(out_hidden, c * self.out_per_pixel, 1, "B", channels=c)

    # -- likelihood ------------------------------------------------------------------------
    def _class_bias(self, label: torch.Tensor | None) -> torch.Tensor | float:
        return 0.0 if self.class_embedding is None else self.class_embedding(label)  # (B, 2h)

    def _logits(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """Unit-interval pixels (B, C, H, W) -> logits (B, C, H, W) or (B, C, H, W, levels)."""
        # Channels-last throughout (a 1-channel input alone would leave the convolutions in NCHW).
        features = self.input_conv(x).contiguous(memory_format=torch.channels_last)  # (B, 2h, H, W)
        if self.class_embedding is not None:
            features = features + self._class_bias(label)[:, :, None, None]
        for layer, residual in zip(self.layers, self.residual):
            features = features + residual(layer(features))  # (B, h, H, W) -> (B, 2h, H, W)
        logits = self.head(F.relu(self.output_conv(F.relu(features))))  # (B, C*L, H, W)
        if self.out_per_pixel == 1:
            return logits
        b, _, height, width = logits.shape
        return logits.view(b, self.out_per_pixel, self.config.channels, height, width).permute(0, 2, 3, 4, 1)

    def log_prob(self, image, label=None):
        c = self.config
        image = self.check_images(image)
        label = self.check_label(label, image.shape[0]) if c.num_classes else None
        logits = self._logits(to_unit_interval(image, c.levels), label)
        return pixel_log_prob(logits, image, c.levels).flatten(1).sum(1)

    # -- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n, temperature=1.0, label=None, generator=None):
        """``n`` images (n, C, H, W) uint8, drawn with the cached sampler."""
        return self._generate(*self._blank(n), temperature, label, generator, _CachedSampler)

    @torch.no_grad()
    def sample_naive(self, n, temperature=1.0, label=None, generator=None):
        """Like ``sample`` but runs the whole network once per pixel and channel (the slow reference).
        Both compute the same logits up to float rounding and draw from ``generator`` in the same
        order, so the same seed gives the same images."""
        return self._generate(*self._blank(n), temperature, label, generator, _NaiveSampler)

    @torch.no_grad()
    def complete(self, images, known_rows: int | None = None, mask: torch.Tensor | None = None,
                 temperature: float = 1.0, label=None, generator=None):
        """Keep the known pixels (top ``known_rows`` rows, or where ``mask`` (C, H, W) or (B, C, H, W)
        is True) and sample the others in raster order, each given every pixel before it."""
        images = self.prepare_images(images)
        known = self.known_pixels(images, known_rows, mask)
        return self._generate(images, known, check_temperature(temperature), label, generator, _CachedSampler)

    def _blank(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (check_count(n), *self.image_shape)
        return (torch.zeros(shape, dtype=torch.uint8, device=self.device),
                torch.zeros(shape, dtype=torch.bool, device=self.device))

    def _generate(self, images, known, temperature, label, generator, sampler_class):
        """Draw every pixel channel not known in all images, in raster order then R -> G -> B.

        Both samplers share this loop, so they consume the random generator identically."""
        c = self.config
        temperature = check_temperature(temperature)
        label = self.check_label(label, len(images))
        images = torch.where(known, images, 0).to(torch.uint8)  # unknown pixels start blank
        sampler = sampler_class(self, images, label)
        drawn_anywhere = ~known.all(dim=0)  # (C, H, W)
        for i in range(c.height):
            for j in range(c.width):
                for k in range(c.channels):
                    if not drawn_anywhere[k, i, j]:
                        continue
                    drawn = sample_pixels(sampler.logits(i, j, k), c.levels, temperature, generator)
                    value = torch.where(known[:, k, i, j], images[:, k, i, j], drawn.to(torch.uint8))
                    images[:, k, i, j] = value
                    sampler.set_pixel(i, j, k, value)
        return images


class _NaiveSampler:
    """Reference sampler: the full network on the whole canvas for every pixel channel."""

    def __init__(self, model: PixelRNN, images: torch.Tensor, label):
        self.model, self.label = model, label
        self.x = to_unit_interval(images, model.config.levels)  # (B, C, H, W)

    def set_pixel(self, i: int, j: int, k: int, value: torch.Tensor) -> None:
        self.x[:, k, i, j] = to_unit_interval(value, self.model.config.levels)

    def logits(self, i: int, j: int, k: int) -> torch.Tensor:
        return self.model._logits(self.x, self.label)[:, k, i, j]  # (B,) or (B, levels)


class _CachedSampler:
    """Incremental sampler: each layer keeps its recurrent state (``start_cache``/``step``/
    ``next_row`` of the spatial LSTM layers), so a pixel costs one column of every layer.

    ``done`` counts the pixels (raster order) whose columns are final in every cache. Features at
    (i, j) never depend on the last colour of pixel (i, j) itself, so the column computed for the
    last channel's logits is final; known pixels skipped by the sampling loop are caught up in runs.
    """

    def __init__(self, model: PixelRNN, images: torch.Tensor, label):
        self.model = model
        c = model.config
        p = FIRST_KERNEL // 2
        # Canvas padded left, right and above; the mask-A kernel's rows below the centre are zero.
        self.canvas = F.pad(to_unit_interval(images, c.levels), (p, p, p, 0))  # (B, C, p+H, p+W+p)
        self.input_weight = model.input_conv.masked_weight[:, :, : p + 1]  # (2h, C, p+1, 7)
        self.class_bias = model._class_bias(label)
        self.residual = [(r.masked_weight.flatten(1), r.bias) for r in model.residual]  # 1x1 convs as linear
        self.output = [(m.masked_weight.flatten(1), m.bias) for m in (model.output_conv, model.head)]
        self.caches = [layer.start_cache(len(images), c.width, self.canvas) for layer in model.layers]
        self.done = 0

    def set_pixel(self, i: int, j: int, k: int, value: torch.Tensor) -> None:
        p = FIRST_KERNEL // 2
        self.canvas[:, k, p + i, p + j] = to_unit_interval(value, self.model.config.levels)

    def _columns(self, i: int, start: int, stop: int) -> torch.Tensor:
        """Residual-stream features (B, n, 2h) at columns start .. stop-1 of row i, updating caches."""
        window = self.canvas[:, :, i : i + FIRST_KERNEL // 2 + 1, start : stop + FIRST_KERNEL - 1]
        features = F.conv2d(window, self.input_weight, self.model.input_conv.bias)[:, :, 0].transpose(1, 2)
        if self.model.class_embedding is not None:
            features = features + self.class_bias[:, None]
        for layer, cache, (weight, bias) in zip(self.model.layers, self.caches, self.residual):
            features = features + F.linear(layer.step(cache, start, features), weight, bias)
        return features

    def _finish(self, i: int, stop: int) -> None:
        self.done = i * self.model.config.width + stop
        if stop == self.model.config.width:
            for layer, cache in zip(self.model.layers, self.caches):
                layer.next_row(cache)

    def logits(self, i: int, j: int, k: int) -> torch.Tensor:
        model, width = self.model, self.model.config.width
        target = i * width + j
        while self.done < target:  # catch up over known pixels, one run per row
            row, col = divmod(self.done, width)
            stop = width if target >= (row + 1) * width else j
            self._columns(row, col, stop)
            self._finish(row, stop)
        features = self._columns(i, j, j + 1)  # (B, 1, 2h)
        if k == model.config.channels - 1:
            self._finish(i, j + 1)
        hidden = F.linear(F.relu(features[:, 0]), *self.output[0])
        logits = F.linear(F.relu(hidden), *self.output[1]).view(len(hidden), -1, model.config.channels)[:, :, k]
        return logits[:, 0] if model.out_per_pixel == 1 else logits  # (B,) or (B, levels)
