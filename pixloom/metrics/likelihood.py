"""Negative log-likelihood of a data set in nats per image and bits per dimension."""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm


def _batches(dataset, batch_size: int, progress: bool):
    """(number of images, batch) over ``dataset`` in order, with a progress bar counting images."""
    with tqdm(total=len(dataset), desc="eval", unit="img", disable=not progress, leave=False) as bar:
        for start in range(0, len(dataset), batch_size):
            indices = torch.arange(start, min(start + batch_size, len(dataset)))
            yield len(indices), dataset.get_batch(indices)
            bar.update(len(indices))


@torch.no_grad()
def evaluate_likelihood(model, dataset, batch_size: int = 256, progress: bool = True, **options) -> dict:
    """Average ``model.nll`` over ``dataset``. Returns ``nll_nats``, ``bits_per_dim``, ``n_images``,
    any other per-image figure the model reports (e.g. ``elbo_nats``) and ``nll_nats_stderr``, the
    standard error of the mean over the images (how much ``nll_nats`` would move on another draw of
    as many images; two models scored on the same images differ far more precisely than this)."""
    model.eval()
    totals: dict[str, float] = {}
    squares = 0.0  # sum of nll_nats ** 2, for the standard error
    count = 0
    for n, batch in _batches(dataset, batch_size, progress):
        label = batch.get("label") if model.config.num_classes else None
        figures = model.nll(batch["image"].to(model.device),
                            None if label is None else label.to(model.device), **options)
        for k, v in figures.items():
            totals[k] = totals.get(k, 0.0) + float(v.double().sum())
        squares += float(figures["nll_nats"].double().pow(2).sum())
        count += n
    result = {k: v / count for k, v in totals.items()}
    mean = result["nll_nats"]
    variance = max(squares - count * mean ** 2, 0.0) / max(count - 1, 1)  # unbiased, over images
    result["nll_nats_stderr"] = math.sqrt(variance / count)
    result["bits_per_dim"] = mean / (model.num_dims * math.log(2.0))
    result["n_images"] = count
    return result


@torch.no_grad()
def evaluate_loss_figures(model, dataset, batch_size: int = 256, progress: bool = True) -> dict:
    """Average every figure of ``model.loss`` over ``dataset`` (for models without a likelihood,
    e.g. the sequence autoencoder's reconstruction error)."""
    model.eval()
    totals: dict[str, float] = {}
    count = 0
    for n, batch in _batches(dataset, batch_size, progress):
        batch = {k: v.to(model.device) for k, v in batch.items()}
        for k, v in model.loss(batch).items():
            totals[k] = totals.get(k, 0.0) + float(v) * n
        count += n
    return {**{k: v / count for k, v in totals.items()}, "n_images": count}
