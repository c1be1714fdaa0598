"""The base class of the VAE-style latent models (recurrent VAE, DRAW): the ELBO and the
importance-weighted bound (Burda, Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders") as
training objectives and likelihood estimates, and the doubly reparameterized gradient of that bound
for the inference network (Tucker, Lawson, Gu & Maddison 2019, "Doubly Reparameterized Gradient
Estimators for Monte Carlo Objectives")."""

from __future__ import annotations

import math
from typing import Callable, ClassVar

import torch

from pixloom.errors import ArgumentError, PixloomError
from pixloom.models.capabilities import Autoencoder, Likelihood, Sampler, Trainable, check_options
from pixloom.models.image import ImageModel


def importance_weighted_nll(log_weights: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, k: int,
                            max_rows: int = 4096) -> dict[str, torch.Tensor]:
    """IWAE estimate of -log p(x) with ``k`` samples (Burda et al. 2016) and the k-sample ELBO.

    ``log_weights(images)`` draws one latent per image and returns ``log p(x, z) - log q(z | x)``,
    shape (rows,). The ``k`` samples of the ``B`` images are drawn in chunks of at most
    ``max_rows`` rows (at least one sample per image per chunk), combined with ``logsumexp``.

    Returns ``nll_nats`` = -log(1/k sum_i w_i) and ``elbo_nats`` = 1/k sum_i log w_i, both (B,).
    ``elbo_nats`` is the ELBO itself (a lower bound on log p, so usually negative) and by Jensen's
    inequality ``nll_nats <= -elbo_nats`` for every image.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ArgumentError("iw_samples", f"must be a whole number of at least 1, got {k!r}")
    b = image.shape[0]
    per_chunk = max(1, max_rows // max(b, 1))
    chunk_lse, log_w_sum, done = [], torch.zeros(b, device=image.device, dtype=torch.float64), 0
    while done < k:
        m = min(per_chunk, k - done)
        repeated = image.unsqueeze(1).expand(b, m, *image.shape[1:]).reshape(b * m, *image.shape[1:])
        log_w = log_weights(repeated).view(b, m).double()  # (B, m)
        chunk_lse.append(torch.logsumexp(log_w, dim=1))
        log_w_sum += log_w.sum(1)
        done += m
    log_p = torch.logsumexp(torch.stack(chunk_lse, 1), dim=1) - math.log(k)  # (B,)
    return {"nll_nats": (-log_p).float(), "elbo_nats": (log_w_sum / k).float()}


class ImportanceWeightedModel(ImageModel, Trainable, Likelihood, Sampler, Autoencoder):
    """A latent-variable generator scored by the IWAE bound. Subclasses implement
    ``_log_weights(images) -> log p(x, z) - log q(z | x)`` for one latent draw per image, (rows,)."""

    default_iw_samples = 100
    iw_max_rows = 4096
    evaluation_options: ClassVar[tuple[str, ...]] = ("iw_samples",)
    # Name prefixes of the parameters of the inference network q(z | x); all others define p(x, z).
    inference_parameter_prefixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config):
        super().__init__(config)
        if getattr(config, "iw_train_samples", 1) < 1:
            raise PixloomError(f"iw_train_samples must be at least 1, got {config.iw_train_samples}")
        if getattr(config, "dreg", False) and not getattr(config, "freeze_generative", False):
            raise PixloomError("dreg = true is the doubly reparameterized gradient of the inference network "
                               "alone; set freeze_generative = true as well")

    def freeze_generative_if_asked(self) -> None:
        """Under ``config.freeze_generative`` only q(z | x) trains: the parameters of p(x, z), and so
        the likelihood the model defines, stay as they are (subclasses call this last in __init__)."""
        if getattr(self.config, "freeze_generative", False):
            for name, parameter in self.named_parameters():
                if not name.startswith(self.inference_parameter_prefixes):
                    parameter.requires_grad_(False)

    def _log_weights_dreg(self, images: torch.Tensor, kl_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """One z ~ q(z | x) per image, reparameterised: ``(log_w, log_w_path)``, (rows,) each, where
        ``log_w_path`` is the same number with the parameters of q held fixed inside log q(z | x),
        so that its gradient reaches q's parameters only through z (Tucker et al. 2019)."""
        raise PixloomError(f"{self.name} has no doubly reparameterized gradient (dreg)")

    def _log_weights(self, images: torch.Tensor, kl_weight: float = 1.0) -> torch.Tensor:
        """``log p(x | z) + kl_weight * (log p(z) - log q(z | x))`` for one z ~ q(z | x) per image."""
        raise NotImplementedError

    def kl_weight(self) -> float:
        """KL factor of the current training step: rises from 0 to 1 over ``config.kl_warmup_steps``
        (Bowman et al. 2016), so the decoder learns to use z before the prior pulls q towards it;
        without it a model can sit at the mean-image plateau (KL ~ 0). Always 1 outside training,
        so validation scores the true ELBO. Subclasses keep a ``train_steps`` buffer (saved with the
        weights, so resume keeps the schedule) and call :meth:`count_training_step` in ``loss``."""
        warmup = self.config.kl_warmup_steps
        if warmup <= 0 or not self.training:
            return 1.0
        return min(1.0, int(self.train_steps) / warmup)

    def elbo_loss(self, recon: torch.Tensor, kl: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
        """The training dict from per-image reconstruction and KL nats (B,): the loss to minimise is
        (recon + beta * KL) per dimension; the logged ELBO always uses the full KL."""
        return {
            "loss": (recon + beta * kl).mean() / self.num_dims,
            "elbo_nats": -(recon + kl).mean().detach(),
            "recon_nats": recon.mean().detach(),
            "kl_nats": kl.mean().detach(),
            "kl_weight": torch.tensor(beta),
        }

    def training_loss(self, images: torch.Tensor, recon_and_kl: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                      ) -> dict[str, torch.Tensor]:
        """The loss of one batch: the ELBO (``recon_and_kl()`` gives per-image nats, (B,) each) or,
        with ``config.iw_train_samples = k > 1``, the k-sample importance-weighted bound
        (Burda et al. 2016, eq. 8), the IWAE training objective. Its gradient weights each of the k
        samples by its normalised importance weight, so q(z | x) may spread over the posterior
        instead of hugging one mode, and the likelihood (not the ELBO) is what improves. The KL
        warm-up weights ``log p(z) - log q(z | x)`` inside each weight; at validation the bound is exact."""
        beta = self.kl_weight()
        self.count_training_step()
        k = getattr(self.config, "iw_train_samples", 1)
        dreg = getattr(self.config, "dreg", False)
        if k <= 1 and not dreg:
            recon, kl = recon_and_kl()
            return self.elbo_loss(recon, kl, beta)
        b, repeated = images.shape[0], images.repeat_interleave(k, dim=0)
        if dreg and torch.is_grad_enabled():
            # The doubly reparameterized gradient (Tucker et al. 2019) of the bound with respect
            # to q's parameters: sum_i w~_i^2 d log w_i / d z_i dz_i / dphi. Its value is the bound;
            # only its gradient differs, and it does not vanish in signal-to-noise as k grows the
            # way the plain estimator's does for q (Rainforth et al. 2018).
            log_w, log_w_path = (t.view(b, k) for t in self._log_weights_dreg(repeated, kl_weight=beta))
            bound = torch.logsumexp(log_w, dim=1) - math.log(k)  # (B,)
            surrogate = -(torch.softmax(log_w.detach(), dim=1).pow(2) * log_w_path).sum(1)  # (B,)
            loss = (-bound.detach() + surrogate - surrogate.detach()).mean()
        else:
            log_w = self._log_weights(repeated, kl_weight=beta).view(b, k)  # (B, k)
            bound = torch.logsumexp(log_w, dim=1) - math.log(k)  # (B,)
            loss = -bound.mean()
        return {
            "loss": loss / self.num_dims,
            "iwae_nats": bound.mean().detach(),  # the k-sample bound on log p(x)
            "elbo_nats": log_w.mean().detach(),  # a one-sample estimate of the ELBO, for comparison
            "kl_weight": torch.tensor(beta),
        }

    def count_training_step(self) -> None:
        if self.training and torch.is_grad_enabled():
            self.train_steps += 1

    def nll(self, image, label=None, iw_samples: int | None = None, **options):
        """``nll_nats``: IWAE estimate of -log p(x) with ``iw_samples`` samples (default 100);
        ``elbo_nats``: the ELBO (mean log weight of the same samples). Both (B,)."""
        check_options(self, options)
        self.check_label(label, image.shape[0])
        images = self.check_images(image)
        k = self.default_iw_samples if iw_samples is None else iw_samples
        with torch.no_grad():
            return importance_weighted_nll(self._log_weights, images, k, self.iw_max_rows)

    def log_prob(self, image, label=None):
        """IWAE estimate of log p(x) with ``default_iw_samples`` samples, (B,)."""
        return -self.nll(image, label)["nll_nats"]
