"""A recurrent GAN: an LSTM (or GRU) generator emits the image row by row, one row per time step.

Esteban, Hyland and Rätsch (2017), "Real-valued (Medical) Time Series Generation with Recurrent
Conditional GANs" (RGAN / RCGAN): the generator is a recurrent network that reads fresh noise (and
the class label, for RCGAN) at every time step and emits one output per step; the discriminator is a
recurrent network over the same sequence. Here the time steps are image rows: step t reads noise
z_t, the label's embedding and a projection of the global noise z, and emits the logits of row t.

The global noise (and the label's own embedding) also sets the LSTM's initial state, each step may
read the row it wrote before (``feedback``), and each row's noise (with the global noise) also enters
the row's output through a linear layer (``noise_to_rows``): without these, on MNIST, the generator's
rows stopped depending on z within an epoch and every sample was the same picture. (A conditional
generator can still stop depending on z within each class: see docs/benchmarks.md, "GANs".)

Discriminators (``discriminator``): ``lstm``, an LSTM over the rows whose outputs at every step are
scored and averaged (as RGAN's), ``cnn``, two strided convolutions (DCGAN-style, Radford et al.
2016), or ``mlp``, the fully connected discriminator of the MLP GAN; the CNN and the MLP read the
label through a projection (Miyato and Koyama 2018: the score gains <embedding(label), features>;
the MLP also reads the one-hot label as an input). All three see the spread of the batch (the
minibatch standard deviation of Karras et al. 2018), which makes a collapsed generator easy to tell.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pixloom.errors import PixloomError
from pixloom.models.gan.base import GAN, check_gan_config, spectral
from pixloom.models.image import ImageConfig
from pixloom.nn.fused import make_fused_rnn

DISCRIMINATORS = ("lstm", "cnn", "mlp")


def minibatch_spread(features: torch.Tensor) -> torch.Tensor:
    """The mean standard deviation of the features over the batch, one value per example (B, 1)
    (Karras et al. 2018): a batch of near-copies has a tell-tale small one."""
    spread = features.std(dim=0, unbiased=False).mean() if len(features) > 1 else features.new_zeros(())
    return spread.expand(len(features), 1)


@dataclass
class RecurrentGANConfig(ImageConfig):
    levels: int = 256
    noise_size: int = 100  # the global noise z
    step_noise: int = 16  # fresh noise per row
    cell: str = "lstm"  # lstm | gru: the generator's recurrent cell
    hidden_size: int = 256
    num_layers: int = 2
    feedback: bool = True  # each step reads the row written before
    noise_to_rows: bool = True  # each row's noise also enters its output directly
    discriminator: str = "cnn"  # cnn | lstm | mlp (the fully connected GAN's)
    discriminator_hidden: int = 128
    discriminator_dropout: float = 0.0
    d_lr_ratio: float = 1.0  # the discriminator's learning rate, relative to the generator's
    loss: str = "non-saturating"  # non-saturating | wgan-gp
    critic_steps: int = 1
    gp_weight: float = 10.0
    spectral_norm: bool = True  # spectral normalisation of the discriminator's weights
    real_label_smoothing: float = 0.1  # non-saturating loss: real targets 0.9
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
        state_parts = 2 if c.cell == "lstm" else 1
        self.generator = nn.ModuleDict({
            "from_noise": nn.Linear(c.noise_size, h),
            "initial_state": nn.Linear(c.noise_size, state_parts * c.num_layers * h),
            "from_row": nn.Linear(row, h),
            "rnn": make_fused_rnn(c.cell, h + c.step_noise, h, c.num_layers),
            "to_row": nn.Linear(h, row),
            "noise_row": nn.Linear(c.step_noise + c.noise_size, row),
        })
        if c.num_classes:
            self.generator["label"] = nn.Embedding(c.num_classes, h)
            self.generator["label_state"] = nn.Embedding(c.num_classes, state_parts * c.num_layers * h)
        d = c.discriminator_hidden
        self._build_discriminator(c, d, row)
        spectral(self.discriminator, c.spectral_norm)

    def _build_discriminator(self, c, d, row) -> None:
        if c.discriminator == "mlp":
            pixels = c.channels * c.height * c.width
            self.discriminator = nn.ModuleDict({"body": nn.Sequential(
                nn.Linear(pixels + c.num_classes, 2 * d), nn.LeakyReLU(0.2), nn.Dropout(c.discriminator_dropout),
                nn.Linear(2 * d, 2 * d), nn.LeakyReLU(0.2), nn.Dropout(c.discriminator_dropout)),
                "score": nn.Linear(2 * d + 1, 1)})
            if c.num_classes:
                self.discriminator["label"] = nn.Embedding(c.num_classes, 2 * d)
            return
        if c.discriminator == "lstm":
            self.discriminator = nn.ModuleDict({"rnn": make_fused_rnn("lstm", row, d, 1), "score": nn.Linear(d + 1, 1)})
            if c.num_classes:
                self.discriminator["label"] = nn.Embedding(c.num_classes, row)
        else:
            self.discriminator = nn.ModuleDict({
                "body": nn.Sequential(nn.Conv2d(c.channels, d // 2, 4, 2, 1), nn.LeakyReLU(0.2),
                                      nn.Dropout(c.discriminator_dropout), nn.Conv2d(d // 2, d, 4, 2, 1),
                                      nn.LeakyReLU(0.2), nn.Dropout(c.discriminator_dropout), nn.Flatten()),
                "score": nn.Linear(d * (c.height // 4) * (c.width // 4) + 1, 1),
            })
            if c.num_classes:
                self.discriminator["label"] = nn.Embedding(c.num_classes, d * (c.height // 4) * (c.width // 4))

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The global noise and every row's noise in one vector (B, noise_size + H * step_noise)."""
        c = self.config
        return torch.randn(n, c.noise_size + c.height * c.step_noise, generator=generator, device=self.device)

    def generate_logits(self, z, label):
        c, g = self.config, self.generator
        b, h = len(z), c.hidden_size
        z_global = z[:, :c.noise_size]
        context = torch.tanh(g["from_noise"](z_global))  # (B, h)
        if c.num_classes:
            context = context + g["label"](label)
        steps = z[:, c.noise_size:].view(b, c.height, c.step_noise)
        state = g["initial_state"](z_global)
        if c.num_classes:
            state = state + g["label_state"](label)
        state = torch.tanh(state).view(b, -1, c.num_layers, h).permute(1, 2, 0, 3).contiguous()
        state = (state[0], state[1]) if c.cell == "lstm" else state[0]
        if not c.feedback:
            inputs = torch.cat([context[:, None, :].expand(b, c.height, -1), steps], dim=2)
            out, _ = g["rnn"](inputs, state)
            rows = g["to_row"](out)  # (B, H, C*W)
            if c.noise_to_rows:
                both = torch.cat([steps, z_global[:, None, :].expand(b, c.height, -1)], dim=2)
                rows = rows + g["noise_row"](both)
        else:
            previous = torch.zeros(b, c.channels * c.width, device=z.device, dtype=z.dtype)
            rows = []
            for t in range(c.height):
                x = torch.cat([context + g["from_row"](previous), steps[:, t]], dim=1)[:, None]
                out, state = g["rnn"](x, state)
                logits = g["to_row"](out[:, 0])
                if c.noise_to_rows:
                    logits = logits + g["noise_row"](torch.cat([steps[:, t], z_global], dim=1))
                rows.append(logits)
                previous = torch.sigmoid(logits)
            rows = torch.stack(rows, dim=1)
        return rows.view(b, c.height, c.channels, c.width).permute(0, 2, 1, 3)

    def discriminate(self, images, label):
        c, d = self.config, self.discriminator
        x = images * 2 - 1
        if c.discriminator == "mlp":
            flat = x.flatten(1)
            if c.num_classes:
                flat = torch.cat([flat, torch.nn.functional.one_hot(label, c.num_classes).to(flat.dtype)], dim=1)
            features = d["body"](flat)
            score = d["score"](torch.cat([features, minibatch_spread(features)], dim=1))[:, 0]
            if c.num_classes:
                score = score + (d["label"](label) * features).sum(1) / features.shape[1] ** 0.5
            return score
        if c.discriminator == "lstm":
            rows = x.permute(0, 2, 1, 3).reshape(len(x), c.height, -1)
            if c.num_classes:
                rows = rows + d["label"](label)[:, None, :]
            out, _ = d["rnn"](rows)
            spread = minibatch_spread(out.mean(1))
            return d["score"](torch.cat([out, spread[:, None, :].expand(-1, out.shape[1], -1)], dim=2)).mean(dim=(1, 2))
        features = d["body"](x)
        score = d["score"](torch.cat([features, minibatch_spread(features)], dim=1))[:, 0]
        if c.num_classes:
            score = score + (d["label"](label) * features).sum(1) / features.shape[1] ** 0.5
        return score
