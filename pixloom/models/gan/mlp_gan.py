"""The fully connected GAN of Goodfellow et al. (2014), "Generative Adversarial Nets", NeurIPS, as in
the RNN-image articles' own code: noise 100 -> 256 -> 256 -> 784 with a sigmoid output; an MLP
discriminator 784 -> 256 -> 256 -> 1. Class conditioning (Mirza and Osindero 2014) concatenates a
one-hot label to the noise and to the discriminator's input."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixloom.models.gan.base import GAN, check_gan_config, spectral
from pixloom.models.image import ImageConfig


@dataclass
class MLPGANConfig(ImageConfig):
    levels: int = 256
    noise_size: int = 100
    hidden_size: int = 256
    loss: str = "non-saturating"  # non-saturating | wgan-gp
    critic_steps: int = 1  # discriminator steps per generator step (5 is usual for wgan-gp)
    gp_weight: float = 10.0
    dropout: float = 0.3  # in the discriminator
    d_lr_ratio: float = 1.0  # the discriminator's learning rate, relative to the generator's
    spectral_norm: bool = True  # spectral normalisation of the discriminator's weights
    real_label_smoothing: float = 0.1  # non-saturating loss: real targets 0.9
    monitor: str = "mnist-classifier"  # classifier of the mode-collapse monitor and the FD selection ("" = none)
    collapse_share: float = 0.3  # warn when one class takes more than this share of the monitor's samples


class MLPGAN(GAN):
    name = "mlp-gan"
    config_class = MLPGANConfig
    summary = "fully connected GAN (Goodfellow et al. 2014): noise 100 -> 256 -> 256 -> 784, MLP discriminator"

    def __init__(self, config: MLPGANConfig):
        check_gan_config(config)
        super().__init__(config)
        c, h = config, config.hidden_size
        pixels = c.channels * c.height * c.width
        k = c.num_classes
        self.generator = nn.Sequential(nn.Linear(c.noise_size + k, h), nn.LeakyReLU(0.2), nn.Linear(h, h),
                                       nn.LeakyReLU(0.2), nn.Linear(h, pixels))
        self.discriminator = spectral(nn.Sequential(nn.Linear(pixels + k, h), nn.LeakyReLU(0.2), nn.Dropout(c.dropout),
                                                    nn.Linear(h, h), nn.LeakyReLU(0.2), nn.Dropout(c.dropout),
                                                    nn.Linear(h, 1)), c.spectral_norm)

    def _with_label(self, x: torch.Tensor, label) -> torch.Tensor:
        if not self.config.num_classes:
            return x
        return torch.cat([x, F.one_hot(label, self.config.num_classes).to(x.dtype)], dim=1)

    def generate_logits(self, z, label):
        return self.generator(self._with_label(z, label)).view(len(z), *self.image_shape)

    def discriminate(self, images, label):
        return self.discriminator(self._with_label(images.flatten(1) * 2 - 1, label))[:, 0]
