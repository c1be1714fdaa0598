"""A row-LSTM classifier: an LSTM reads the image one row per time step and its last state is
classified (the "28 steps of 28 inputs" MNIST LSTM of the RNN tutorials). The model the private
training of the privacy literature reports on with recurrent networks (e.g. McMahan et al. 2018)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixloom.errors import PixloomError
from pixloom.models.capabilities import Classifier, Trainable
from pixloom.models.image import ImageConfig, ImageModel
from pixloom.nn.fused import make_fused_rnn
from pixloom.nn.pixel_output import to_unit_interval


@dataclass
class RowLSTMClassifierConfig(ImageConfig):
    levels: int = 256
    num_classes: int = 10
    cell: str = "lstm"  # lstm | gru | rnn
    hidden_size: int = 128
    num_layers: int = 1


class RowLSTMClassifier(ImageModel, Trainable, Classifier):
    name = "row-lstm-classifier"
    config_class = RowLSTMClassifierConfig
    summary = "an LSTM reads the image row by row and classifies it (28 steps of 28 inputs)"

    def __init__(self, config: RowLSTMClassifierConfig):
        super().__init__(config)
        if config.num_classes < 2:
            raise PixloomError("a classifier needs labelled data with at least 2 classes")
        c = config
        self.rows_in = nn.Linear(c.channels * c.width, c.hidden_size)
        self.rnn = make_fused_rnn(c.cell, c.hidden_size, c.hidden_size, c.num_layers)
        self.out = nn.Linear(c.hidden_size, c.num_classes)

    @property
    def feature_size(self) -> int:
        return self.config.hidden_size

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device) if images.is_floating_point() else \
            to_unit_interval(self.check_images(images), self.config.levels)
        rows = x.permute(0, 2, 1, 3).reshape(len(x), self.config.height, -1)
        out, _ = self.rnn(torch.relu(self.rows_in(rows - 0.5)))
        return out[:, -1]

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(images))

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "label" not in batch:
            raise PixloomError(f"{self.name} trains on labelled data")
        logits = self.classify(batch["image"])
        label = batch["label"].to(self.device)
        return {"loss": F.cross_entropy(logits, label), "accuracy": (logits.argmax(1) == label).float().mean().detach()}
