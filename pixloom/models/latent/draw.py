"""DRAW: a recurrent variational autoencoder that paints a canvas over T steps.

Gregor, Danihelka, Graves, Rezende and Wierstra 2015, "DRAW: A Recurrent Neural Network For Image
Generation" (ICML). At each step ``t = 1..T`` (eq. 3-8):

    x^_t      = x - sigmoid(c_{t-1})                     error image
    r_t       = read(x, x^_t, h^dec_{t-1})
    h^enc_t   = LSTM_enc(h^enc_{t-1}, [r_t, h^dec_{t-1}])
    z_t       ~ Q(Z_t | h^enc_t) = N(mu_t, sigma_t^2),  mu_t = W h^enc_t, log sigma_t = W h^enc_t
    h^dec_t   = LSTM_dec(h^dec_{t-1}, z_t)
    c_t       = c_{t-1} + write(h^dec_t)

and ``p(x | z_1..T) = Bernoulli(sigmoid(c_T))``. The loss is the negative ELBO
``L^x + L^z`` with ``L^z = sum_t KL(Q(Z_t | h^enc_t) || N(0, I))`` (eq. 9-12). ``c_0``, ``h^enc_0`` and
``h^dec_0`` are learned biases. Generation runs the decoder alone on ``z_t ~ N(0, I)`` (eq. 13-15).

With ``attention = True`` read and write use an N x N grid of Gaussian filters whose centre,
stride, width and intensity a linear layer emits from ``h^dec`` (section 3.2;
:mod:`pixloom.nn.attention`); without it, read is ``[x, x^_t]`` and write a linear map to the whole
canvas (section 3.1). Defaults are the paper's MNIST model with attention: T = 64, read 2 x 2,
write 5 x 5, 256 LSTM units, 100 latent dimensions per step.

Likelihood: ``nll(..., iw_samples=k)`` is the importance-weighted bound of Burda et al. 2016 over
the whole latent sequence ``z_1..T`` (the paper reports the ELBO; ``elbo_nats`` is that). With
``freeze_generative`` and ``dreg`` only the inference network (encoder LSTM, posterior, read attention)
trains, on the doubly reparameterized gradient of that bound (Tucker et al. 2019): a better
importance sampler for a fixed model. Binary images only (levels 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixloom.errors import PixloomError
from pixloom.models.capabilities import CanvasSampler
from pixloom.models.image import ImageConfig, check_count, check_temperature
from pixloom.models.latent.common import (gaussian_kl, interpolation_weights, require_binary_unconditional,
                                          standard_normal_log_ratio)
from pixloom.models.latent.iwae import ImportanceWeightedModel
from pixloom.nn import attention
from pixloom.nn.pixel_output import sample_pixels, to_unit_interval


@dataclass
class DRAWConfig(ImageConfig):  # binary images, no class conditioning
    steps: int = 64  # T, glimpses / canvas updates
    hidden_size: int = 256  # units of each of the encoder and decoder LSTMs
    latent_size: int = 100  # dimensions of z_t
    attention: bool = True
    read_n: int = 2  # read grid N x N (attention only)
    write_n: int = 5  # write grid N x N (attention only)
    kl_warmup_steps: int = 0  # > 0: KL weight rises linearly from 0 to 1 over this many training steps
    iw_train_samples: int = 1  # k > 1: train on the k-sample IWAE bound instead of the ELBO (Burda et al. 2016)
    freeze_generative: bool = False  # True: only q(z|x) trains; p(x, z), and so the likelihood, stays fixed
    dreg: bool = False  # with freeze_generative: q's doubly reparameterized IWAE gradient (Tucker et al. 2019)


class DRAW(ImportanceWeightedModel, CanvasSampler):
    name = "draw"
    config_class = DRAWConfig
    summary = "DRAW: LSTM VAE painting a canvas over T steps with Gaussian attention (Gregor et al. 2015)"
    inference_parameter_prefixes = ("encoder.", "posterior.", "read_attention.", "h_enc0")

    def __init__(self, config: DRAWConfig):
        super().__init__(config)
        require_binary_unconditional(self)
        c = config
        if c.steps < 1 or (c.attention and (c.read_n < 1 or c.write_n < 1)):
            raise PixloomError("draw needs steps >= 1 and read_n, write_n >= 1")
        pixels, h = c.channels * c.height * c.width, c.hidden_size
        read_size = 2 * c.channels * c.read_n ** 2 if c.attention else 2 * pixels
        self.encoder = nn.LSTMCell(read_size + h, h)
        self.posterior = nn.Linear(h, 2 * c.latent_size)  # -> (mu, log sigma)
        self.decoder = nn.LSTMCell(c.latent_size, h)
        self.write_head = nn.Linear(h, c.channels * c.write_n ** 2 if c.attention else pixels)
        self.read_attention = nn.Linear(h, 5) if c.attention else None  # (g~X, g~Y, log s2, log d~, log gamma)
        self.write_attention = nn.Linear(h, 5) if c.attention else None
        if c.attention:
            # Start with glimpses that see the digit: the read grid spans the centre half of the image
            # with blurred filters (stride delta~ = 0.5, sigma^2 = e^2), the write filters slightly
            # blurred (sigma^2 = e). With all-zero biases the 2 x 2 read grid sits on the four
            # corner pixels, which are blank in MNIST, and the encoder starts blind.
            with torch.no_grad():
                self.read_attention.bias.copy_(torch.tensor([0.0, 0.0, 2.0, math.log(0.5), 0.0]))
                self.write_attention.bias.copy_(torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0]))
        self.canvas0 = nn.Parameter(torch.zeros(c.channels, c.height, c.width))
        self.h_enc0 = nn.Parameter(torch.zeros(h))
        self.h_dec0 = nn.Parameter(torch.zeros(h))
        self.register_buffer("train_steps", torch.zeros((), dtype=torch.long))  # for the KL warm-up
        self.freeze_generative_if_asked()

    # -- read and write (eq. 17-18 without attention, 27-29 with) -------------------------------
    def _filters(self, layer, h_dec: torch.Tensor, n: int):
        c = self.config
        gx, gy, log_sigma2, log_delta, log_gamma = attention.attention_params(layer(h_dec), n, c.height, c.width)
        fx, fy = attention.gaussian_filterbank(gx, gy, log_sigma2, log_delta, n, c.height, c.width)
        return fx, fy, log_gamma

    def _read(self, x: torch.Tensor, x_hat: torch.Tensor, h_dec: torch.Tensor, read_attention=None) -> torch.Tensor:
        """(B, C, H, W) x 2 -> (B, read_size). ``read_attention``: a stand-in for that layer."""
        if self.read_attention is None:
            return torch.cat([x.flatten(1), x_hat.flatten(1)], dim=1)
        fx, fy, log_gamma = self._filters(read_attention or self.read_attention, h_dec, self.config.read_n)
        both = torch.cat([x, x_hat], dim=1)  # (B, 2C, H, W): one filterbank for both
        return attention.read(both, fx, fy, log_gamma).flatten(1)  # (B, 2C * N * N)

    def _write(self, h_dec: torch.Tensor) -> torch.Tensor:
        """h^dec (B, hidden) -> canvas update (B, C, H, W)."""
        c = self.config
        w = self.write_head(h_dec)
        if self.write_attention is None:
            return w.view(-1, c.channels, c.height, c.width)
        fx, fy, log_gamma = self._filters(self.write_attention, h_dec, c.write_n)
        return attention.write(w.view(-1, c.channels, c.write_n, c.write_n), fx, fy, log_gamma)

    def _start(self, b: int):
        h = self.config.hidden_size
        zeros = torch.zeros(b, h, device=self.device)
        canvas = self.canvas0.expand(b, *self.image_shape)
        return canvas, (self.h_enc0.expand(b, h), zeros), (self.h_dec0.expand(b, h), zeros)

    # -- inference: encoder and decoder together -------------------------------------------------
    def _infer(self, images: torch.Tensor, use_means: bool = False, keep_steps: bool = False) -> dict[str, torch.Tensor]:
        """Run the whole model on integer images (B, C, H, W). Returns the final canvas logits
        ``canvas`` (B, C, H, W), ``kl`` (B,), ``log_ratio`` = sum_t log p(z_t) - log q(z_t) (B,)
        and the posterior means ``mu`` (B, T, latent). ``use_means``: z_t = mu_t (no noise).
        ``keep_steps``: also ``steps``, the (c_{t-1}, h^dec_{t-1}, z_t) of every step."""
        x = to_unit_interval(images, self.config.levels)
        canvas, enc, dec = self._start(x.shape[0])
        kl = log_ratio = torch.zeros(x.shape[0], device=x.device)
        means, steps = [], []
        for _ in range(self.config.steps):
            x_hat = x - torch.sigmoid(canvas)  # eq. 3
            r = self._read(x, x_hat, dec[0])  # eq. 4
            enc = self.encoder(torch.cat([r, dec[0]], dim=1), enc)  # eq. 5
            mu, log_sigma = self.posterior(enc[0]).chunk(2, dim=-1)  # eq. 1-2
            eps = torch.zeros_like(mu) if use_means else torch.randn_like(mu)
            z = mu + log_sigma.exp() * eps  # eq. 6
            if keep_steps:
                steps.append((canvas, dec[0], z))
            kl = kl + gaussian_kl(mu, 2 * log_sigma)  # eq. 11
            log_ratio = log_ratio + standard_normal_log_ratio(z, eps, log_sigma)
            dec = self.decoder(z, dec)  # eq. 7
            canvas = canvas + self._write(dec[0])  # eq. 8
            means.append(mu)
        return {"canvas": canvas, "kl": kl, "log_ratio": log_ratio, "mu": torch.stack(means, dim=1), "steps": steps}

    def _recon_nats(self, canvas: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """L^x = -log D(x | c_T), (B,) (eq. 9)."""
        return F.binary_cross_entropy_with_logits(canvas, images.float(), reduction="none").flatten(1).sum(1)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images = batch["image"].to(self.device)

        def recon_and_kl():
            out = self._infer(images)
            return self._recon_nats(out["canvas"], images), out["kl"]
        return self.training_loss(images, recon_and_kl)

    # -- likelihood ------------------------------------------------------------------------------
    def _log_weights(self, images: torch.Tensor, kl_weight: float = 1.0) -> torch.Tensor:
        out = self._infer(images)
        return kl_weight * out["log_ratio"] - self._recon_nats(out["canvas"], images)

    def _log_weights_dreg(self, images: torch.Tensor, kl_weight: float = 1.0):
        """``(log_w, log_w_path)`` for one latent sequence per image. q(z_t | z_<t, x) depends on
        z_<t through the canvas and h^dec, so log q with q's parameters held fixed is a second run
        of the encoder over the same z_1..T with detached weights (gradients still flow through z)."""
        out = self._infer(images, keep_steps=True)
        log_px = -self._recon_nats(out["canvas"], images)
        x = to_unit_interval(images, self.config.levels)
        fixed = {name: p.detach() for name, p in self.named_parameters() if name.startswith(self.inference_parameter_prefixes)}

        def sub(prefix):
            return {name[len(prefix):]: p for name, p in fixed.items() if name.startswith(prefix)}
        encoder, posterior, read = sub("encoder."), sub("posterior."), sub("read_attention.")
        read_attention = (lambda h: torch.func.functional_call(self.read_attention, read, (h,))) if read else None
        b, hidden = x.shape[0], self.config.hidden_size
        enc = (fixed["h_enc0"].expand(b, hidden), torch.zeros(b, hidden, device=x.device))
        log_ratio_path = torch.zeros(b, device=x.device)
        for canvas, h_dec, z in out["steps"]:
            r = self._read(x, x - torch.sigmoid(canvas), h_dec, read_attention)
            enc = torch.func.functional_call(self.encoder, encoder, (torch.cat([r, h_dec], dim=1), enc))
            mu, log_sigma = torch.func.functional_call(self.posterior, posterior, (enc[0],)).chunk(2, dim=-1)
            log_ratio_path = log_ratio_path + standard_normal_log_ratio(z, (z - mu) / log_sigma.exp(), log_sigma)
        return log_px + kl_weight * out["log_ratio"], log_px + kl_weight * log_ratio_path

    # -- generation ------------------------------------------------------------------------------
    def _decode_canvases(self, z: torch.Tensor | None, n: int, generator=None) -> torch.Tensor:
        """The decoder alone (eq. 13-15) on latents z (n, T, latent), or z_t ~ N(0, I) when None.
        Returns the canvas logits after every step, (n, T, C, H, W)."""
        c = self.config
        canvas, _, dec = self._start(n)
        canvases = []
        for t in range(c.steps):
            z_t = z[:, t] if z is not None else torch.randn(n, c.latent_size, generator=generator, device=self.device)
            dec = self.decoder(z_t, dec)
            canvas = canvas + self._write(dec[0])
            canvases.append(canvas)
        return torch.stack(canvases, dim=1)

    @torch.no_grad()
    def sample(self, n, temperature=1.0, label=None, generator=None):
        """Pixels ~ Bernoulli(sigmoid(c_T)) at ``temperature``; uint8 (n, C, H, W)."""
        n, temperature = check_count(n), check_temperature(temperature)
        self.check_label(label, n)
        final = self._decode_canvases(None, n, generator)[:, -1]
        return sample_pixels(final, 2, temperature, generator).to(torch.uint8)

    @torch.no_grad()
    def canvas_steps(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """How ``n`` new pictures are drawn: sigmoid(c_t) for t = 1..T, (n, T, C, H, W) in [0, 1]."""
        return torch.sigmoid(self._decode_canvases(None, check_count(n), generator))

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The posterior means mu_1..T, each fed forward as z_t, (B, T, latent)."""
        return self._infer(self.prepare_images(images), use_means=True)["mu"]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent sequences (B, T, latent) -> sigmoid(c_T), floats in [0, 1], (B, C, H, W)."""
        return torch.sigmoid(self._decode_canvases(z.to(self.device), z.shape[0])[:, -1])

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """sigmoid(c_T) with z_t = mu_t at every step, floats in [0, 1], (B, C, H, W)."""
        return torch.sigmoid(self._infer(self.prepare_images(images), use_means=True)["canvas"])

    @torch.no_grad()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 10) -> torch.Tensor:
        """Decoded straight line between the posterior-mean sequences of two images, (steps, C, H, W)."""
        z = self.encode(torch.stack([a.reshape(self.image_shape), b.reshape(self.image_shape)]))  # (2, T, latent)
        t = interpolation_weights(steps, z.device).view(-1, 1, 1)  # (steps, 1, 1)
        return self.decode((1 - t) * z[0] + t * z[1])
