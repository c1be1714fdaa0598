"""DRAW's differentiable selective attention: an N x N grid of 2-D Gaussian filters.

Gregor, Danihelka, Graves, Rezende and Wierstra 2015, "DRAW: A Recurrent Neural Network For Image
Generation", section 3.2 (equations 19-29). Building blocks only; the model is
:mod:`pixloom.models.latent.draw`.

Coordinates. Pixel ``a`` of a row of width ``W`` sits at image coordinate ``a = 0 .. W-1`` (0-based;
the paper counts from 1). Filter ``i = 1 .. N`` of the grid is centred at

    mu_X^i = gX + (i - N/2 - 0.5) * delta            (eq. 19)
    mu_Y^j = gY + (j - N/2 - 0.5) * delta            (eq. 20)

and ``F_X[i, a] = exp(-(a - mu_X^i)^2 / (2 sigma^2)) / Z_X`` with ``Z_X`` making each row sum to one
(eq. 25-26; computed as a softmax, so a filter that strays off the image still sums to one).

:func:`attention_params` maps the five numbers a linear layer emits from the decoder state to the
grid (eq. 21-24). The paper's ``gX = (A + 1) / 2 * (g~X + 1)`` puts ``g~X = 0`` at the centre of
1-based coordinates; in the 0-based coordinates used here we subtract one, so ``g~X = 0`` is the
image centre ``(W - 1) / 2`` and ``g~X = -1 / +1`` lie one pixel beyond the left / right edge.
"""

from __future__ import annotations

import torch


def attention_params(raw: torch.Tensor, n: int, height: int, width: int):
    """Five emitted numbers per image -> the grid in image coordinates (eq. 21-24).

    raw: (B, 5) = (g~X, g~Y, log sigma^2, log delta~, log gamma).
    Returns ``gx, gy, log_sigma2, log_delta, log_gamma``, each (B,).
    """
    gx_, gy_, log_sigma2, log_delta_, log_gamma = raw.unbind(-1)
    gx = (width + 1) / 2 * (gx_ + 1) - 1  # (B,)
    gy = (height + 1) / 2 * (gy_ + 1) - 1
    # delta = (max(A, B) - 1) / (N - 1) * delta~; with N = 1 the stride is irrelevant.
    scale = (max(height, width) - 1) / max(n - 1, 1)
    log_delta = log_delta_ + torch.log(torch.tensor(float(scale), device=raw.device, dtype=raw.dtype))
    return gx, gy, log_sigma2, log_delta, log_gamma


def filter_centres(g: torch.Tensor, log_delta: torch.Tensor, n: int) -> torch.Tensor:
    """Centres mu^i = g + (i - N/2 - 0.5) * delta for i = 1..N: (B,) -> (B, N) (eq. 19-20)."""
    i = torch.arange(1, n + 1, device=g.device, dtype=g.dtype)  # (N,)
    return g.unsqueeze(-1) + (i - n / 2 - 0.5) * log_delta.exp().unsqueeze(-1)


def _filters(centres: torch.Tensor, log_sigma2: torch.Tensor, size: int) -> torch.Tensor:
    """(B, N) centres -> (B, N, size) Gaussian filters whose rows sum to one."""
    a = torch.arange(size, device=centres.device, dtype=centres.dtype)  # (size,)
    sq = (a.view(1, 1, -1) - centres.unsqueeze(-1)) ** 2  # (B, N, size)
    return torch.softmax(-sq / (2 * log_sigma2.exp().view(-1, 1, 1)), dim=-1)


def gaussian_filterbank(gx: torch.Tensor, gy: torch.Tensor, log_sigma2: torch.Tensor, log_delta: torch.Tensor,
                        n: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical filterbank matrices (eq. 25-26).

    gx, gy: grid centre in image coordinates, (B,); log_sigma2: log filter variance, (B,);
    log_delta: log stride between filters in pixels, (B,).
    Returns ``Fx`` (B, N, W) and ``Fy`` (B, N, H), each row a normalised Gaussian.
    """
    fx = _filters(filter_centres(gx, log_delta, n), log_sigma2, width)
    fy = _filters(filter_centres(gy, log_delta, n), log_sigma2, height)
    return fx, fy


def read(images: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor, log_gamma: torch.Tensor) -> torch.Tensor:
    """Glimpse ``gamma * Fy x Fx^T`` (eq. 27): images (B, C, H, W) -> (B, C, N, N)."""
    glimpse = fy.unsqueeze(1) @ images @ fx.transpose(1, 2).unsqueeze(1)  # (B,1,N,H)(B,C,H,W)(B,1,W,N)
    return glimpse * log_gamma.exp().view(-1, 1, 1, 1)


def write(patch: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor, log_gamma: torch.Tensor) -> torch.Tensor:
    """Paint ``1/gamma * Fy^T w Fx`` (eq. 29): patch (B, C, N, N) -> (B, C, H, W)."""
    canvas = fy.transpose(1, 2).unsqueeze(1) @ patch @ fx.unsqueeze(1)  # (B,1,H,N)(B,C,N,N)(B,1,N,W)
    return canvas * (-log_gamma).exp().view(-1, 1, 1, 1)
