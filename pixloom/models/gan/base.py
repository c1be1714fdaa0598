"""What pixloom's GANs share: noise, class conditioning, the two losses, sampling.

A generator maps noise z ~ N(0, I) (and a class label, when conditional) to pixel logits; the images
are their sigmoids, intensities in [0, 1]. A discriminator (a critic under WGAN-GP) scores images.

- ``non-saturating`` (Goodfellow et al. 2014, Sec. 3): D minimises BCE(D(x), 1) + BCE(D(G(z)), 0),
  G minimises BCE(D(G(z)), 1).
- ``wgan-gp`` (Gulrajani et al. 2017): the critic minimises D(G(z)) - D(x) + 10 (||grad D(x^)|| - 1)^2
  on random interpolates x^, G minimises -D(G(z)); several critic steps per generator step.

Training is the shared Trainer with only its step overridden (:class:`pixloom.training.gan.GANTrainer`:
two optimizers, ``critic_steps`` discriminator steps per generator step); ``--ema`` averages the
weights, and the averaged generator is what is validated, saved and sampled. Sampling: ``levels`` 256
gives the intensities quantised to 8 bits; ``levels`` 2 draws each pixel from Bernoulli(intensity),
the binarization of binarized MNIST. ``temperature`` scales the noise (below 1: the "truncation"
trade of variety for typical samples). The discriminator's weights are spectrally normalised and the
non-saturating loss smooths the real targets to 0.9 by default: without them, on MNIST, the
discriminator won within an epoch and the generator collapsed onto one digit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pixloom.errors import PixloomError
from pixloom.models.capabilities import Sampler, Trainable
from pixloom.models.image import ImageModel, check_count, check_temperature
from pixloom.nn.pixel_output import sample_pixels, to_unit_interval

LOSSES = ("non-saturating", "wgan-gp")


def spectral(module: torch.nn.Module, on: bool) -> torch.nn.Module:
    """Spectral normalisation of every linear and convolution weight of ``module`` (Miyato et al.
    2018; torch's parametrization): it bounds the discriminator's Lipschitz constant and keeps it from
    overpowering the generator."""
    if not on:
        return module
    for child in list(module.modules()):
        if isinstance(child, (torch.nn.Linear, torch.nn.Conv2d)):
            torch.nn.utils.parametrizations.spectral_norm(child)
    return module


def check_gan_config(c) -> None:
    if c.loss not in LOSSES:
        raise PixloomError(f"unknown GAN loss '{c.loss}'; choose {' or '.join(LOSSES)}")
    if c.levels not in (2, 256):
        raise PixloomError(f"a GAN here makes binary (levels 2) or 8-bit (levels 256) images, got levels {c.levels}")


class GAN(ImageModel, Trainable, Sampler):
    """Subclasses build ``self.generator`` and ``self.discriminator`` and implement
    :meth:`generate_logits` and :meth:`discriminate`."""

    def generate_logits(self, z: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
        """Noise (B, noise_size) -> pixel logits (B, C, H, W)."""
        raise NotImplementedError

    def discriminate(self, images: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
        """Images as floats in [0, 1] (B, C, H, W) -> scores (B,)."""
        raise NotImplementedError

    def generator_parameters(self):
        return [p for n, p in self.named_parameters() if n.startswith("generator.")]

    def discriminator_parameters(self):
        return [p for n, p in self.named_parameters() if n.startswith("discriminator.")]

    # -- pieces of the losses --------------------------------------------------------------------------
    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.config.noise_size, generator=generator, device=self.device)

    def fake(self, n: int, label: torch.Tensor | None) -> torch.Tensor:
        return torch.sigmoid(self.generate_logits(self.noise(n), label))

    def _real(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        images = batch["image"].to(self.device)
        label = batch.get("label") if self.config.num_classes else None
        label = None if label is None else label.to(self.device)
        return to_unit_interval(images, self.config.levels), label

    def discriminator_loss(self, batch) -> dict[str, torch.Tensor]:
        real, label = self._real(batch)
        with torch.no_grad():
            fake = self.fake(len(real), label)
        d_real, d_fake = self.discriminate(real, label), self.discriminate(fake, label)
        if self.config.loss == "non-saturating":  # real targets 1 - real_label_smoothing (Salimans et al. 2016)
            target = torch.full_like(d_real, 1.0 - self.config.real_label_smoothing)
            loss = F.binary_cross_entropy_with_logits(d_real, target) + \
                F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            return {"d_loss": loss, "d_real": torch.sigmoid(d_real).mean().detach(),
                    "d_fake": torch.sigmoid(d_fake).mean().detach()}
        mix = torch.rand(len(real), 1, 1, 1, device=self.device)
        between = (mix * real + (1 - mix) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(self.discriminate(between, label).sum(), between, create_graph=True)
        penalty = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
        distance = d_real.mean() - d_fake.mean()
        return {"d_loss": -distance + self.config.gp_weight * penalty, "wasserstein": distance.detach(),
                "gradient_penalty": penalty.detach()}

    def generator_loss(self, batch) -> dict[str, torch.Tensor]:
        real, label = self._real(batch)
        d_fake = self.discriminate(self.fake(len(real), label), label)
        if self.config.loss == "non-saturating":
            return {"g_loss": F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))}
        return {"g_loss": -d_fake.mean()}

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Both losses on one batch (validation reports them; training goes through GANTrainer)."""
        with torch.enable_grad():  # the gradient penalty needs a gradient even under no_grad
            d = self.discriminator_loss(batch)
        g = self.generator_loss(batch)
        figures = {k: v.detach() for k, v in {**d, **g}.items()}
        return {"loss": figures["g_loss"], **figures}

    # -- sampling ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def intensities(self, n: int, temperature: float = 1.0, label=None, generator=None) -> torch.Tensor:
        """``n`` images as intensities in [0, 1] (n, C, H, W)."""
        n, temperature = check_count(n), check_temperature(temperature)
        label = self.check_label(label, n)
        return torch.sigmoid(self.generate_logits(self.noise(n, generator) * temperature, label))

    @torch.no_grad()
    def sample(self, n, temperature=1.0, label=None, generator=None):
        n, temperature = check_count(n), check_temperature(temperature)
        label = self.check_label(label, n)
        logits = self.generate_logits(self.noise(n, generator) * temperature, label)
        if self.config.levels == 2:
            return sample_pixels(logits, 2, 1.0, generator).to(torch.uint8)
        return (torch.sigmoid(logits) * 255).round().to(torch.uint8)
