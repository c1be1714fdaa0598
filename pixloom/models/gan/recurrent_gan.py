"""A recurrent GAN: an LSTM (or GRU) generator emits the image row by row, one row per time step.

Esteban, Hyland and Rätsch (2017), "Real-valued (Medical) Time Series Generation with Recurrent
Conditional GANs" (RGAN / RCGAN): the generator is a recurrent network that reads fresh noise (and
the class label, for RCGAN) at every time step and emits one output per step; the discriminator is a
recurrent network over the same sequence. Here the time steps are image rows: step t reads noise
z_t, the label's embedding and a projection of the global noise z, and emits the logits of row t.

Discriminators (``discriminator``): ``lstm``, an LSTM over the rows whose outputs at every step are
scored and averaged (as RGAN's), or ``cnn``, two strided convolutions (DCGAN-style, Radford et al.
2016) with a projection of the label (Miyato and Koyama 2018).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pixloom.errors import PixloomError
from pixloom.models.gan.base import GAN, check_gan_config
from pixloom.models.image import ImageConfig
from pixloom.nn.fused import make_fused_rnn

DISCRIMINATORS = ("lstm", "cnn")


@dataclass
class RecurrentGANConfig(ImageConfig):
    levels: int = 256
    noise_size: int = 100  # the global noise z
    step_noise: int = 16  # fresh noise per row
    cell: str = "lstm"  # lstm | gru: the generator's recurrent cell
    hidden_size: int = 256
    num_layers: int = 2
    discriminator: str = "cnn"  # cnn | lstm
    discriminator_hidden: int = 128
    loss: str = "non-saturating"  # non-saturating | wgan-gp
    critic_steps: int = 1
    gp_weight: float = 10.0
    monitor: str = "mnist-classifier"
    collapse_share: float = 0.3


class RecurrentGAN(GAN):
    name = "lstm-gan"
    config_class = RecurrentGANConfig
    summary = "recurrent GAN (RGAN/RCGAN, Esteban et al. 2017): an LSTM generator emits one image row per step"

    def __init__(self, config: RecurrentGANConfig):
        check_gan_config(config)
        if config.discriminator not in DISCRIMINATORS:
            raise PixloomError(f"unknown discriminator '{config.discriminator}'; choose {' or '.join(DISCRIMINATORS)}")
        super().__init__(config)
        c, h = config, config.hidden_size
        row = c.channels * c.width
        self.generator = nn.ModuleDict({
            "from_noise": nn.Linear(c.noise_size, h),
            "rnn": make_fused_rnn(c.cell, h + c.step_noise, h, c.num_layers),
            "to_row": nn.Linear(h, row),
        })
        if c.num_classes:
            self.generator["label"] = nn.Embedding(c.num_classes, h)
        d = c.discriminator_hidden
        if c.discriminator == "lstm":
            self.discriminator = nn.ModuleDict({"rnn": make_fused_rnn("lstm", row, d, 1), "score": nn.Linear(d, 1)})
            if c.num_classes:
                self.discriminator["label"] = nn.Embedding(c.num_classes, row)
        else:
            self.discriminator = nn.ModuleDict({
                "body": nn.Sequential(nn.Conv2d(c.channels, d // 2, 4, 2, 1), nn.LeakyReLU(0.2),
                                      nn.Conv2d(d // 2, d, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten()),
                "score": nn.Linear(d * (c.height // 4) * (c.width // 4), 1),
            })
            if c.num_classes:
                self.discriminator["label"] = nn.Embedding(c.num_classes, d * (c.height // 4) * (c.width // 4))

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The global noise and every row's noise in one vector (B, noise_size + H * step_noise)."""
        c = self.config
        return torch.randn(n, c.noise_size + c.height * c.step_noise, generator=generator, device=self.device)

    def generate_logits(self, z, label):
        c, g = self.config, self.generator
        b = len(z)
        context = torch.tanh(g["from_noise"](z[:, :c.noise_size]))  # (B, h)
        if c.num_classes:
            context = context + g["label"](label)
        steps = z[:, c.noise_size:].view(b, c.height, c.step_noise)
        inputs = torch.cat([context[:, None, :].expand(b, c.height, -1), steps], dim=2)
        out, _ = g["rnn"](inputs)
        rows = g["to_row"](out)  # (B, H, C*W)
        return rows.view(b, c.height, c.channels, c.width).permute(0, 2, 1, 3)

    def discriminate(self, images, label):
        c, d = self.config, self.discriminator
        x = images * 2 - 1
        if c.discriminator == "lstm":
            rows = x.permute(0, 2, 1, 3).reshape(len(x), c.height, -1)
            if c.num_classes:
                rows = rows + d["label"](label)[:, None, :]
            out, _ = d["rnn"](rows)
            return d["score"](out).mean(dim=(1, 2))
        features = d["body"](x)
        score = d["score"](features)[:, 0]
        if c.num_classes:
            score = score + (d["label"](label) * features).sum(1) / features.shape[1] ** 0.5
        return score
