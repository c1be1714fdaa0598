"""Sequence autoencoder over image rows.

An encoder RNN reads an image one row per time step and its last state becomes a latent vector
``z``; a decoder RNN writes the rows back from ``z``. This is the LSTM autoencoder of Srivastava,
Mansimov and Salakhutdinov 2015 ("Unsupervised Learning of Video Representations using LSTMs") and
the sequence autoencoder of Dai and Le 2015 ("Semi-supervised Sequence Learning"), with image rows
as the sequence.

Decoder. The decoder's state starts from ``z`` and it receives ``z`` at every step. By default
(``decoder_reads_rows = False``, Srivastava's "unconditioned" decoder) that is all it sees, so the
reconstruction comes from the latent alone, in training as at test time. With
``decoder_reads_rows = True`` (the "conditioned" decoder) training also feeds the true previous row
(teacher forcing), while :meth:`decode` / :meth:`reconstruct` feed back the decoder's own expected
rows, so they still start from nothing but ``z``. Rows are written top to bottom (Srivastava et al.
write their target in reverse order; with a decoder that sees ``z`` at every step the order made
no difference to training in our short runs).

Output and loss (config ``recon_loss``): ``bce`` - binary cross-entropy against pixels in [0, 1]
(a Bernoulli likelihood for binary images; the default there); ``mse`` - squared error of
``sigmoid(output)`` (the default for more levels); ``categorical`` - a ``levels``-way softmax per
pixel. There is no likelihood: ``loss`` returns the mean per-pixel loss and ``recon_error``, the
mean squared error of the expected image in [0, 1] units (comparable across losses).

Sampling. An autoencoder has no prior over ``z``; after training, :meth:`fit_latent_density` fits a
Gaussian mixture with diagonal covariances to the latents of the training images (EM, deterministic)
and stores it in buffers, so it is saved with the model; :meth:`sample` draws ``z`` from it.
``pixloom train`` calls it through :meth:`after_training`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixloom.errors import PixloomError
from pixloom.models.capabilities import Autoencoder, Sampler, Trainable
from pixloom.models.image import ImageConfig, ImageModel, check_count, check_temperature
from pixloom.models.latent.common import LOG_2PI, image_rows, interpolation_weights
from pixloom.nn.fused import make_fused_rnn
from pixloom.nn.pixel_output import pixel_log_prob, sample_pixels, to_unit_interval

RECON_LOSSES = ("auto", "bce", "mse", "categorical")


# -- a Gaussian mixture, written with torch ------------------------------------------------------
def diagonal_gmm_log_probs(x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor,
                           variances: torch.Tensor) -> torch.Tensor:
    """log(pi_k N(x_n; mu_k, diag var_k)) for points x (N, D) and K components -> (N, K)."""
    precision = 1.0 / variances  # (K, D)
    # sum_d (x_d - mu_kd)^2 / var_kd, expanded so that no (N, K, D) tensor is formed
    mahalanobis = x.pow(2) @ precision.T - 2 * x @ (means * precision).T + (means.pow(2) * precision).sum(1)
    log_norm = variances.log().sum(1) + means.shape[1] * LOG_2PI  # (K,)
    return -0.5 * (mahalanobis + log_norm) + weights.log()  # (N, K)


def fit_diagonal_gmm(x: torch.Tensor, components: int, iterations: int = 100, tol: float = 1e-7,
                     min_variance: float = 1e-4, seed: int = 0):
    """Fit a mixture of ``components`` diagonal Gaussians to ``x`` (N, D) by EM.

    Initialised by k-means++ seeding with a fixed-seed generator, so the fit is a deterministic
    function of ``x``. Works in float64; variances are floored at ``min_variance``.
    Returns ``weights`` (K,), ``means`` (K, D), ``variances`` (K, D) as float32 and the mean
    log-likelihood per point.
    """
    x = x.detach().double().cpu()
    n, d = x.shape
    if n < components:
        raise PixloomError(f"cannot fit {components} mixture components to {n} points; use more data")
    g = torch.Generator().manual_seed(seed)
    means = x[torch.randint(n, (1,), generator=g)]  # (1, D)
    for _ in range(components - 1):  # k-means++: next centre with probability ~ squared distance
        dist2 = torch.cdist(x, means).pow(2).min(1).values  # (N,)
        probs = dist2 / dist2.sum() if dist2.sum() > 0 else torch.full_like(dist2, 1.0 / n)
        means = torch.cat([means, x[torch.multinomial(probs, 1, generator=g)]])
    variances = x.var(0, unbiased=False).clamp_min(min_variance).expand(components, d).clone()
    weights = torch.full((components,), 1.0 / components, dtype=torch.float64)
    previous = -math.inf
    for _ in range(iterations):
        log_joint = diagonal_gmm_log_probs(x, weights, means, variances)  # (N, K)
        log_lik = torch.logsumexp(log_joint, dim=1)  # (N,)
        resp = (log_joint - log_lik.unsqueeze(1)).exp()  # E step: responsibilities (N, K)
        counts = resp.sum(0) + 1e-10  # (K,)
        weights = counts / counts.sum()  # M step
        means = resp.T @ x / counts.unsqueeze(1)
        variances = (resp.T @ x.pow(2) / counts.unsqueeze(1) - means.pow(2)).clamp_min(min_variance)
        current = float(log_lik.mean())
        if abs(current - previous) <= tol * max(1.0, abs(current)):
            break
        previous = current
    mean_ll = float(torch.logsumexp(diagonal_gmm_log_probs(x, weights, means, variances), 1).mean())
    return weights.float(), means.float(), variances.float(), mean_ll


# -- the model -----------------------------------------------------------------------------------
@dataclass
class SeqAutoencoderConfig(ImageConfig):  # no class conditioning
    cell: str = "lstm"  # lstm | gru (rnn also works)
    hidden_size: int = 256
    num_layers: int = 1
    latent_size: int = 32
    decoder_reads_rows: bool = False  # True: teacher-forced on the previous rows in training
    recon_loss: str = "auto"  # auto (bce for levels 2, else mse) | bce | mse | categorical
    mixture_components: int = 10  # Gaussian mixture fitted to the training latents for sampling
    em_iterations: int = 200


class SeqAutoencoder(ImageModel, Trainable, Sampler, Autoencoder):
    """Not a likelihood model: ``pixloom eval`` reports the reconstruction figures of ``loss``."""

    name = "seq-autoencoder"
    config_class = SeqAutoencoderConfig
    summary = "RNN encoder reads rows into a latent vector, RNN decoder writes them back (Srivastava et al. 2015)"

    def __init__(self, config: SeqAutoencoderConfig):
        super().__init__(config)
        c = config
        if c.recon_loss not in RECON_LOSSES:
            raise PixloomError(f"unknown recon_loss '{c.recon_loss}'; choose one of: {', '.join(RECON_LOSSES)}")
        if c.num_classes:
            raise PixloomError(f"{self.name} has no class conditioning; train it without class labels")
        self.recon = c.recon_loss if c.recon_loss != "auto" else ("bce" if c.levels == 2 else "mse")
        if self.recon == "categorical" and c.levels == 2:
            self.recon = "bce"  # a 2-way softmax is a Bernoulli
        self.out_per_pixel = c.levels if self.recon == "categorical" else 1
        row_size, h = c.channels * c.width, c.hidden_size
        self.state_parts = 2 if c.cell == "lstm" else 1  # LSTM: (h, c)
        self.encoder_in = nn.Linear(row_size, h)
        self.encoder = make_fused_rnn(c.cell, h, h, c.num_layers)
        self.to_latent = nn.Linear(h, c.latent_size)
        self.z_to_state = nn.Linear(c.latent_size, self.state_parts * c.num_layers * h)
        self.z_to_input = nn.Linear(c.latent_size, h)
        self.row_in = nn.Linear(row_size, h) if c.decoder_reads_rows else None
        self.start_row = nn.Parameter(torch.zeros(h)) if c.decoder_reads_rows else None
        self.decoder = make_fused_rnn(c.cell, h, h, c.num_layers)
        self.head = nn.Linear(h, row_size * self.out_per_pixel)
        k, d = c.mixture_components, c.latent_size
        self.register_buffer("gmm_weights", torch.full((k,), 1.0 / k))
        self.register_buffer("gmm_means", torch.zeros(k, d))
        self.register_buffer("gmm_variances", torch.ones(k, d))
        self.register_buffer("gmm_fitted", torch.zeros((), dtype=torch.bool))

    # -- encoder and decoder ---------------------------------------------------------------------
    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        """Integer images (B, C, H, W) -> latents (B, latent), with gradients."""
        _, state = self.encoder(self.encoder_in(image_rows(images, self.config.levels)))
        h_n = state[0] if isinstance(state, tuple) else state  # (layers, B, hidden)
        return self.to_latent(h_n[-1])

    def _decoder_start(self, z: torch.Tensor):
        c = self.config
        s = torch.tanh(self.z_to_state(z)).view(z.shape[0], self.state_parts, c.num_layers, c.hidden_size)
        s = s.permute(1, 2, 0, 3).contiguous()  # (parts, layers, B, hidden)
        state = (s[0], s[1]) if self.state_parts == 2 else s[0]
        return state, self.z_to_input(z).unsqueeze(1)  # per-step input (B, 1, hidden)

    def _logits(self, out: torch.Tensor) -> torch.Tensor:
        """Decoder outputs (B, T, hidden) -> logits (B, C, T, W[, levels])."""
        c = self.config
        logits = self.head(out).view(out.shape[0], out.shape[1], c.channels, c.width, self.out_per_pixel)
        logits = logits.permute(0, 2, 1, 3, 4)
        return logits.squeeze(-1) if self.out_per_pixel == 1 else logits

    def _expected(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> the expected pixel value in [0, 1]."""
        if self.out_per_pixel == 1:
            return torch.sigmoid(logits)
        values = torch.linspace(0.0, 1.0, self.config.levels, device=logits.device)
        return torch.softmax(logits, dim=-1) @ values

    def _decode_logits(self, z: torch.Tensor, images: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, C, H, W[, levels]) from z; rows of ``images`` are read only when the decoder
        reads rows and images are given (teacher forcing); otherwise it runs on its own."""
        c = self.config
        state, z_in = self._decoder_start(z)
        if self.row_in is None:
            out, _ = self.decoder(z_in.expand(-1, c.height, -1), state)
            return self._logits(out)
        if images is not None:
            previous = self.row_in(image_rows(images, c.levels)[:, :-1])  # (B, H-1, hidden)
            inputs = z_in + torch.cat([self.start_row.expand(z.shape[0], 1, -1), previous], dim=1)
            return self._logits(self.decoder(inputs, state)[0])
        x, rows = z_in + self.start_row.view(1, 1, -1), []
        for _ in range(c.height):  # free-running: feed back the expected row
            out, state = self.decoder(x, state)
            rows.append(self._logits(out))  # (B, C, 1, W[, L])
            x = z_in + self.row_in(self._expected(rows[-1]).reshape(z.shape[0], 1, -1))
        return torch.cat(rows, dim=2)

    # -- training --------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images = batch["image"].to(self.device)
        logits = self._decode_logits(self._encode(images), images)
        target = to_unit_interval(images, self.config.levels)  # (B, C, H, W) in [0, 1]
        if self.recon == "bce":
            per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        elif self.recon == "mse":
            per_pixel = (torch.sigmoid(logits) - target).pow(2)
        else:
            per_pixel = -pixel_log_prob(logits, images, self.config.levels)
        recon_error = (self._expected(logits.detach()) - target).pow(2).mean()
        return {"loss": per_pixel.mean(), "recon_error": recon_error}

    # -- the latent space ------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Integer images (B, C, H, W) -> latent vectors (B, latent)."""
        return self._encode(self.prepare_images(images))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, latent) -> expected images, floats in [0, 1], (B, C, H, W)."""
        return self._expected(self._decode_logits(z.to(self.device)))

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """decode(encode(images)): floats in [0, 1], (B, C, H, W)."""
        return self.decode(self.encode(images))

    @torch.no_grad()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 10) -> torch.Tensor:
        """Decoded points on the line between the latents of two images, (steps, C, H, W) floats."""
        z = self.encode(torch.stack([a.reshape(self.image_shape), b.reshape(self.image_shape)]))  # (2, latent)
        t = interpolation_weights(steps, z.device).unsqueeze(1)  # (steps, 1)
        return self.decode((1 - t) * z[0] + t * z[1])

    @torch.no_grad()
    def fit_latent_density(self, dataset, batch_size: int = 256) -> dict:
        """Fit the Gaussian mixture over latents of ``dataset`` (anything with ``__len__`` and
        ``get_batch``) and store it in this model's buffers. Returns a summary dict."""
        was_training = self.training
        self.eval()
        latents = [self._encode(dataset.get_batch(torch.arange(s, min(s + batch_size, len(dataset))))["image"]
                                .to(self.device)) for s in range(0, len(dataset), batch_size)]
        self.train(was_training)
        c = self.config
        weights, means, variances, mean_ll = fit_diagonal_gmm(torch.cat(latents), c.mixture_components, c.em_iterations)
        self.gmm_weights.copy_(weights)
        self.gmm_means.copy_(means)
        self.gmm_variances.copy_(variances)
        self.gmm_fitted.fill_(True)
        return {"components": c.mixture_components, "n_latents": len(dataset), "mean_log_likelihood": mean_ll}

    def after_training(self, train_data) -> str:
        """Fit the latent density on the saved best model once training ends."""
        fit = self.fit_latent_density(train_data)
        return (f"fitted a {fit['components']}-component Gaussian mixture to {fit['n_latents']} training latents "
                f"(mean log-likelihood {fit['mean_log_likelihood']:.2f})")

    @torch.no_grad()
    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents from the fitted mixture, (n, latent)."""
        if not bool(self.gmm_fitted):
            raise PixloomError(f"{self.name} has no latent density yet; call fit_latent_density(train_data) "
                               "(pixloom train does this after training)")
        component = torch.multinomial(self.gmm_weights, n, replacement=True, generator=generator)  # (n,)
        eps = torch.randn(n, self.config.latent_size, generator=generator, device=self.device)
        return self.gmm_means[component] + self.gmm_variances[component].sqrt() * eps

    @torch.no_grad()
    def sample(self, n, temperature=1.0, label=None, generator=None):
        """Latents from the fitted mixture, decoded; uint8 levels (n, C, H, W). Bernoulli and
        categorical outputs are sampled at ``temperature``; an ``mse`` output (or ``bce`` on more
        than two levels) has no pixel distribution, so its expected image is rounded to levels."""
        n, temperature = check_count(n), check_temperature(temperature)
        self.check_label(label, n)
        logits = self._decode_logits(self.sample_latents(n, generator))
        levels = self.config.levels
        if self.out_per_pixel > 1 or (self.recon == "bce" and levels == 2):
            return sample_pixels(logits, levels, temperature, generator).to(torch.uint8)
        return (self._expected(logits) * (levels - 1)).round().to(torch.uint8)
