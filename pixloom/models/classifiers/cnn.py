"""A small convolutional digit classifier: the feature network of pixloom's sample-quality metrics.

Three 3x3 convolution blocks with batch normalisation (LeCun et al. 1998's idea at the size of the
common MNIST examples: 32 -> 64 -> 128 channels, two 2x2 max-pools), global average pooling, a
128-wide penultimate layer whose activations are the features the Fréchet and kernel distances and
the precision/recall of samples use, and a linear layer to the classes. Random shifts of up to two
pixels augment training, and half of the training images are binarized (each pixel drawn from
Bernoulli(intensity), as binarized MNIST is), so that the features describe 8-bit and binary digits alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixloom.errors import PixloomError
from pixloom.models.capabilities import Classifier, Trainable
from pixloom.models.image import ImageConfig, ImageModel
from pixloom.nn.pixel_output import to_unit_interval


@dataclass
class CNNClassifierConfig(ImageConfig):
    levels: int = 256
    num_classes: int = 10  # the classes to tell apart (the data's labels)
    width_factor: int = 32  # channels of the first block (then x2, x4)
    feature_size: int = 128  # the penultimate layer: the features of the sample metrics
    dropout: float = 0.3
    shift: int = 2  # training augmentation: random shifts of up to this many pixels
    binarize_share: float = 0.5  # training augmentation: this share of the images binarized (pixel ~ Bernoulli)


class CNNClassifier(ImageModel, Trainable, Classifier):
    name = "cnn-classifier"
    config_class = CNNClassifierConfig
    summary = "small CNN classifier (3 conv blocks); its penultimate features feed the sample-quality metrics"

    def __init__(self, config: CNNClassifierConfig):
        super().__init__(config)
        if config.num_classes < 2:
            raise PixloomError("a classifier needs labelled data with at least 2 classes")
        w = config.width_factor

        def block(c_in, c_out):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                                 nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())

        self.body = nn.Sequential(block(config.channels, w), nn.MaxPool2d(2), block(w, 2 * w), nn.MaxPool2d(2),
                                  block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.penultimate = nn.Sequential(nn.Linear(4 * w, config.feature_size), nn.ReLU())
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.feature_size, config.num_classes)

    @property
    def feature_size(self) -> int:
        return self.config.feature_size

    def _unit(self, images: torch.Tensor) -> torch.Tensor:
        if images.is_floating_point():  # already intensities in [0, 1] (e.g. a generator's output)
            return images.to(self.device)
        return to_unit_interval(self.check_images(images), self.config.levels)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.penultimate(self.body(self._unit(images) - 0.5))

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(images))

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "label" not in batch:
            raise PixloomError(f"{self.name} trains on labelled data")
        x = self._unit(batch["image"])
        if self.training and self.config.binarize_share:
            chosen = torch.rand(len(x), 1, 1, 1, device=x.device) < self.config.binarize_share
            x = torch.where(chosen, (torch.rand_like(x) < x).float(), x)
        if self.training and self.config.shift:
            s = self.config.shift
            x = F.pad(x, (s, s, s, s))
            dy, dx = (int(v) for v in torch.randint(0, 2 * s + 1, (2,)))
            x = x[:, :, dy:dy + self.config.height, dx:dx + self.config.width]
        logits = self.out(self.dropout(self.penultimate(self.body(x - 0.5))))
        label = batch["label"].to(self.device)
        loss = F.cross_entropy(logits, label)
        return {"loss": loss, "accuracy": (logits.argmax(1) == label).float().mean().detach()}
