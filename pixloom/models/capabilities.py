"""What a model can do, declared: small abstract base classes that models inherit.

The command line, the Python API's task functions and the web app ask ``isinstance(model, Sampler)``
instead of probing for methods, and a model inherits only the contracts it keeps: every abstract
method must be implemented, and no model inherits a capability whose methods it refuses.

=================  ===========================================================  ========================
capability         methods                                                       models
=================  ===========================================================  ========================
``Trainable``      ``loss(batch) -> dict``                                       all but the ensemble
``Likelihood``     ``log_prob(images, label)``, ``nll(images, label, **options)`` autoregressive, VAE, DRAW
``Sampler``        ``sample(n, temperature, label, generator)``                  all image generators
``Completer``      ``complete(images, known_rows | mask, ...)``                   autoregressive
``Autoencoder``    ``encode``, ``decode``, ``reconstruct``, ``interpolate``      latent models
``CanvasSampler``  ``canvas_steps(n, generator)``                                DRAW
``Captioning``     ``caption(images, beam, ...)``                                captioners, ensemble
``Classifier``     ``classify(images)``, ``features(images)``                    classifiers
``Upscaler``       ``upscale(images, ...)``                                      super-resolvers
=================  ===========================================================  ========================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from pixloom.errors import ArgumentError


class Trainable(ABC):
    """A model the Trainer can train: ``loss(batch)`` returns a scalar ``"loss"`` plus figures to log."""

    @abstractmethod
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A dict with a scalar ``"loss"`` to minimise, plus any figures worth logging."""

    def after_training(self, train_data) -> str | None:
        """Called on the saved best model once training ends (e.g. to fit a latent density); returns
        a note for the user, or None. The model is saved again afterwards."""
        return None


class Likelihood(ABC):
    """A density model of images: (a bound on) the log-likelihood in nats per image."""

    evaluation_options: ClassVar[tuple[str, ...]] = ()  # keyword options ``nll`` accepts (e.g. iw_samples)

    @abstractmethod
    def log_prob(self, images: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """Log-likelihood in nats of each image, shape (B,)."""

    def nll(self, images: torch.Tensor, label: torch.Tensor | None = None, **options: Any) -> dict[str, torch.Tensor]:
        """Per-image figures for evaluation; ``nll_nats`` (B,) is always present."""
        check_options(self, options)
        return {"nll_nats": -self.log_prob(images, label)}


def check_options(model: Likelihood, options: dict) -> None:
    unknown = sorted(set(options) - set(model.evaluation_options))
    if unknown:
        known = ", ".join(model.evaluation_options) or "none"
        raise ArgumentError(unknown[0], f"is not an evaluation option of {model.name} (its options: {known})")


class Sampler(ABC):
    """Draws new images."""

    @abstractmethod
    def sample(self, n: int, temperature: float = 1.0, label: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` new images as uint8 levels, shape (n, C, H, W)."""


class Completer(ABC):
    """Keeps the known pixels of images and samples the others."""

    @abstractmethod
    def complete(self, images, known_rows: int | None = None, mask: torch.Tensor | None = None,
                 temperature: float = 1.0, label: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Keep the top ``known_rows`` rows (or the pixels where ``mask`` is True) of each image and
        sample the rest; uint8 levels (B, C, H, W)."""


class Autoencoder(ABC):
    """Maps images to latent vectors and back."""

    @abstractmethod
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> latent vectors (B, latent)."""

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents -> images, floats in [0, 1], (B, C, H, W)."""

    @abstractmethod
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """decode(encode(images)), floats in [0, 1]."""

    @abstractmethod
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 10) -> torch.Tensor:
        """Decoded points on the line between the latents of two images, (steps, C, H, W) floats."""


class CanvasSampler(ABC):
    """Draws in steps: the canvas after each step can be shown."""

    @abstractmethod
    def canvas_steps(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The canvas of ``n`` new pictures after each step, floats in [0, 1], (n, T, C, H, W)."""


class Captioning(ABC):
    """Describes photos in words."""

    has_attention: ClassVar[bool] = False  # ``decode`` returns attention weights over an image grid

    @abstractmethod
    def caption(self, images, beam: int = 3, max_len: int = 20, length_penalty: float | None = None,
                allow_unk: bool = False) -> list[str]:
        """One caption per image: image file paths, PIL images or uint8 (B, 3, H, W) tensors."""


class Classifier(ABC):
    """Tells classes of images apart; its penultimate features describe images (sample metrics)."""

    @abstractmethod
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (B, classes) of uint8 levels or [0, 1] float images."""

    @abstractmethod
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The penultimate features (B, feature_size)."""


class Upscaler(ABC):
    """Turns low-resolution images into high-resolution ones."""

    @abstractmethod
    def upscale(self, images, **options: Any) -> torch.Tensor:
        """High-resolution versions of ``images``."""


CAPABILITIES: dict[str, type] = {
    "trainable": Trainable, "likelihood": Likelihood, "sample": Sampler, "complete": Completer,
    "autoencoder": Autoencoder, "canvas": CanvasSampler, "caption": Captioning, "classify": Classifier,
    "upscale": Upscaler,
}


def capabilities_of(model_or_class) -> list[str]:
    """The names of the capabilities a model (or model class) declares, in table order."""
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    return [name for name, base in CAPABILITIES.items() if issubclass(cls, base)]
