"""Recurrent variational autoencoder over image rows.

A variational autoencoder (Kingma and Welling 2014, "Auto-Encoding Variational Bayes") whose
encoder and decoder are LSTMs that read and write an image one row per time step, in the manner of
the variational recurrent autoencoder of Fabius and van Amersfoort 2015:

    q(z | x)  = N(mu(x), diag sigma^2(x)),  mu, sigma from the encoder LSTM's last state over the rows
    p(z)      = N(0, I)
    p(x | z)  = prod_t prod_j Bernoulli(x[t, j] | decoder LSTM state at row t)

The decoder starts from a state computed from ``z`` and receives ``z`` at every step. With
``decoder_reads_rows = False`` (default) that is all it sees, so the pixels are *fully factorised
given z* and everything the picture shares must pass through the latent: reconstructions and
interpolations are exact means. With ``decoder_reads_rows = True`` the decoder also reads the rows
above (the rows are independent given ``z`` and the previous rows), a better density model that
may learn to ignore ``z`` (Bowman et al. 2016); ``kl_warmup_steps`` is the usual remedy.

Training maximises the ELBO ``E_q[log p(x|z)] - KL(q || p)``; with ``kl_warmup_steps > 0`` the KL
term is weighted by ``min(1, step / kl_warmup_steps)`` during training (never at validation). The
model counts its own optimisation steps in the buffer ``train_steps``, so the schedule is saved in
every checkpoint and survives ``--resume``.

Likelihood: the importance-weighted bound of Burda, Grosse and Salakhutdinov 2016 ("Importance
Weighted Autoencoders"), ``log p(x) >= E[log 1/k sum_i p(x, z_i) / q(z_i | x)]``, tightens as ``k``
grows; :func:`importance_weighted_nll` computes it in chunks so memory stays bounded for any ``k``.
Binary images only (levels 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pixloom.models.image import ImageConfig, check_count, check_temperature
from pixloom.models.latent.common import (gaussian_kl, image_rows, interpolation_weights, require_binary_unconditional,
                                          standard_normal_log_ratio)
from pixloom.models.latent.iwae import ImportanceWeightedModel
from pixloom.nn.fused import make_fused_rnn
from pixloom.nn.pixel_output import sample_pixels

# -- the model -----------------------------------------------------------------------------------
@dataclass
class RecurrentVAEConfig(ImageConfig):  # binary images, no class conditioning
    hidden_size: int = 256
    num_layers: int = 1
    latent_size: int = 32
    decoder_reads_rows: bool = False  # False: pixels fully factorised given z
    kl_warmup_steps: int = 0  # > 0: KL weight rises linearly from 0 to 1 over this many training steps
    iw_train_samples: int = 1  # k > 1: train on the k-sample IWAE bound instead of the ELBO (Burda et al. 2016)
    freeze_generative: bool = False  # True: only q(z|x) trains; p(x, z), and so the likelihood, stays fixed
    dreg: bool = False  # with freeze_generative: q's doubly reparameterized IWAE gradient (Tucker et al. 2019)


class RecurrentVAE(ImportanceWeightedModel):
    name = "recurrent-vae"
    config_class = RecurrentVAEConfig
    summary = "VAE with LSTM encoder/decoder over rows (Kingma & Welling 2014); ELBO training, IWAE likelihood"
    default_iw_samples: ClassVar[int] = 100  # k of log_prob / nll when none is given
    iw_max_rows: ClassVar[int] = 4096  # images x samples per forward pass in nll
    inference_parameter_prefixes = ("encoder_in.", "encoder.", "posterior.")

    def __init__(self, config: RecurrentVAEConfig):
        super().__init__(config)
        require_binary_unconditional(self)
        c = config
        row_size, h = c.channels * c.width, c.hidden_size
        self.encoder_in = nn.Linear(row_size, h)
        self.encoder = make_fused_rnn("lstm", h, h, c.num_layers)
        self.posterior = nn.Linear(h, 2 * c.latent_size)  # -> (mu, log sigma^2)
        self.z_to_state = nn.Linear(c.latent_size, 2 * c.num_layers * h)  # -> decoder (h0, c0)
        self.z_to_input = nn.Linear(c.latent_size, h)
        self.row_in = nn.Linear(row_size, h) if c.decoder_reads_rows else None
        self.start_row = nn.Parameter(torch.zeros(h)) if c.decoder_reads_rows else None
        self.decoder = make_fused_rnn("lstm", h, h, c.num_layers)
        self.head = nn.Linear(h, row_size)
        self.register_buffer("train_steps", torch.zeros((), dtype=torch.long))
        self.freeze_generative_if_asked()

    # -- encoder and decoder ---------------------------------------------------------------------
    def posterior_params(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer images (B, C, H, W) -> mean and log-variance of q(z | x), each (B, latent)."""
        rows = image_rows(images, self.config.levels)  # (B, H, C*W)
        _, (h_n, _) = self.encoder(self.encoder_in(rows))  # h_n: (layers, B, hidden)
        mu, logvar = self.posterior(h_n[-1]).chunk(2, dim=-1)
        return mu, logvar

    def _decoder_start(self, z: torch.Tensor):
        """z (B, latent) -> LSTM state ((layers, B, hidden) x 2) and per-step input (B, 1, hidden)."""
        c = self.config
        s = torch.tanh(self.z_to_state(z)).view(z.shape[0], 2, c.num_layers, c.hidden_size)
        s = s.permute(1, 2, 0, 3).contiguous()  # (2, layers, B, hidden)
        return (s[0], s[1]), self.z_to_input(z).unsqueeze(1)

    def _row_logits(self, out: torch.Tensor) -> torch.Tensor:
        """Decoder outputs (B, T, hidden) -> Bernoulli logits (B, C, T, W)."""
        c = self.config
        return self.head(out).view(out.shape[0], out.shape[1], c.channels, c.width).permute(0, 2, 1, 3)

    def decoder_logits(self, z: torch.Tensor, images: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of p(x | z) for every pixel, (B, C, H, W). With ``decoder_reads_rows`` the decoder
        reads the rows of ``images`` (teacher forcing: exact conditionals of those images)."""
        c = self.config
        state, z_in = self._decoder_start(z)
        inputs = z_in.expand(-1, c.height, -1)  # (B, H, hidden)
        if self.row_in is not None:
            if images is None:
                raise ValueError("decoder_logits needs the images when the decoder reads rows")
            previous = self.row_in(image_rows(images, c.levels)[:, :-1])  # (B, H-1, hidden)
            inputs = inputs + torch.cat([self.start_row.expand(z.shape[0], 1, -1), previous], dim=1)
        out, _ = self.decoder(inputs, state)
        return self._row_logits(out)

    def _generate(self, z: torch.Tensor, pick_row: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Run the decoder from z alone; ``pick_row(logits (B, C, W))`` chooses each row (floats in
        [0, 1]) that is fed back when the decoder reads rows. Returns (B, C, H, W) floats."""
        c = self.config
        if self.row_in is None:
            return pick_row(self.decoder_logits(z))
        state, z_in = self._decoder_start(z)
        x = z_in + self.start_row.view(1, 1, -1)
        rows = []
        for _ in range(c.height):
            out, state = self.decoder(x, state)
            row = pick_row(self._row_logits(out)[:, :, 0])  # (B, C, W)
            rows.append(row)
            x = z_in + self.row_in(row.reshape(z.shape[0], 1, -1))
        return torch.stack(rows, dim=2)

    # -- training --------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images = batch["image"].to(self.device)

        def recon_and_kl():
            mu, logvar = self.posterior_params(images)  # (B, latent) each
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)  # reparameterisation
            logits = self.decoder_logits(z, images)  # (B, C, H, W)
            recon = F.binary_cross_entropy_with_logits(logits, images.float(), reduction="none").flatten(1).sum(1)
            return recon, gaussian_kl(mu, logvar)  # (B,) each
        return self.training_loss(images, recon_and_kl)

    # -- likelihood ------------------------------------------------------------------------------
    def _draw_latent(self, images: torch.Tensor):
        """One reparameterised z ~ q(z | x) per image: (log p(x | z), z, eps, mu, log sigma), (B, ...)."""
        mu, logvar = self.posterior_params(images)
        eps = torch.randn_like(mu)
        z = mu + (0.5 * logvar).exp() * eps
        logits = self.decoder_logits(z, images)
        log_px = -F.binary_cross_entropy_with_logits(logits, images.float(), reduction="none").flatten(1).sum(1)
        return log_px, z, eps, mu, 0.5 * logvar

    def _log_weights(self, images: torch.Tensor, kl_weight: float = 1.0) -> torch.Tensor:
        """One z ~ q(z|x) per image: log p(x, z) - log q(z | x), (B,) (the prior ratio times kl_weight)."""
        log_px, z, eps, _, log_sigma = self._draw_latent(images)
        return log_px + kl_weight * standard_normal_log_ratio(z, eps, log_sigma)

    def _log_weights_dreg(self, images: torch.Tensor, kl_weight: float = 1.0):
        """``(log_w, log_w_path)``: one z per image; in ``log_w_path`` log q(z | x) has its mean and
        variance detached, so its gradient reaches the encoder only through z."""
        log_px, z, eps, mu, log_sigma = self._draw_latent(images)
        fixed_sigma = log_sigma.detach()
        path = standard_normal_log_ratio(z, (z - mu.detach()) / fixed_sigma.exp(), fixed_sigma)
        return log_px + kl_weight * standard_normal_log_ratio(z, eps, log_sigma), log_px + kl_weight * path

    # -- what the latent space is for ------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Posterior means, (B, latent)."""
        return self.posterior_params(self.prepare_images(images))[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean images E[x | z] as floats in [0, 1], (B, C, H, W). When the decoder reads rows, each
        row's probabilities are fed back as the next input (a deterministic mean-field rollout)."""
        return self._generate(z.to(self.device), torch.sigmoid)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """decode(encode(images)): mean images (floats in [0, 1]) from the posterior means."""
        return self.decode(self.encode(images))

    @torch.no_grad()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 10) -> torch.Tensor:
        """Mean images along the straight line between the posterior means of two images,
        (steps, C, H, W) floats in [0, 1], from ``a`` to ``b``."""
        z = self.encode(torch.stack([a.reshape(self.image_shape), b.reshape(self.image_shape)]))  # (2, latent)
        t = interpolation_weights(steps, z.device).unsqueeze(1)  # (steps, 1)
        return self.decode((1 - t) * z[0] + t * z[1])

    @torch.no_grad()
    def sample(self, n, temperature=1.0, label=None, generator=None):
        """z ~ N(0, I), then pixels ~ p(x | z) at ``temperature``; uint8 (n, C, H, W)."""
        n, temperature = check_count(n), check_temperature(temperature)
        self.check_label(label, n)
        z = torch.randn(n, self.config.latent_size, generator=generator, device=self.device)
        pick = lambda logits: sample_pixels(logits, 2, temperature, generator).float()  # noqa: E731
        return self._generate(z, pick).to(torch.uint8)
