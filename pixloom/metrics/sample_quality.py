"""How good are samples? Offline metrics on the features of a classifier trained by pixloom.

- Fréchet distance (Heusel et al. 2017, "FID") and kernel distance (Bińkowski et al. 2018, "KID") of
  the classifier's penultimate features, through torchmetrics' ``FrechetInceptionDistance`` and
  ``KernelInceptionDistance`` with the classifier as the custom feature extractor (torchmetrics does
  not put it in eval mode: :class:`FeatureNetwork` does, and freezes it).
- Precision and recall of the sample manifold (Kynkäänniemi et al. 2019, "Improved precision and
  recall metric for assessing generative models"): a sample is precise when it falls inside the
  k-nearest-neighbour ball of some real image; a real image is recalled when it falls inside the ball
  of some sample. Checked against the reference implementation of Naeem et al. 2020 (``prdc``).
- Class coverage: the share of samples the classifier puts in each class, and the largest share.
- TSTR (train on synthetic, test on real; Esteban et al. 2017): the accuracy on real test images of
  a classifier trained on a class-conditional generator's samples and their labels.

Images enter as floats in [0, 1] (B, C, H, W); :func:`to_unit_floats` converts levels.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def to_unit_floats(images: torch.Tensor, levels: int) -> torch.Tensor:
    """uint8 levels -> floats in [0, 1]; floats are returned as they are."""
    return images.float() if images.is_floating_point() else images.float() / (levels - 1)


class FeatureNetwork(nn.Module):
    """A classifier as torchmetrics' feature extractor: frozen, always in eval mode, [0, 1] floats in."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier.eval()
        for p in self.classifier.parameters():
            p.requires_grad_(False)
        self.num_features = classifier.feature_size

    def train(self, mode: bool = True):  # torchmetrics may call .train(); the classifier stays in eval mode
        super().train(mode)
        self.classifier.eval()
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images.float()).double()


@torch.no_grad()
def features_of(network: FeatureNetwork, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    return torch.cat([network(images[k:k + batch_size]) for k in range(0, len(images), batch_size)])


def frechet_distance(network: FeatureNetwork, real: torch.Tensor, fake: torch.Tensor, batch_size: int = 500) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=network, normalize=True)
    metric.inception.eval()
    for k in range(0, len(real), batch_size):
        metric.update(real[k:k + batch_size], real=True)
    for k in range(0, len(fake), batch_size):
        metric.update(fake[k:k + batch_size], real=False)
    return float(metric.compute())


def kernel_distance(network: FeatureNetwork, real: torch.Tensor, fake: torch.Tensor, subsets: int = 50,
                    subset_size: int = 1000, batch_size: int = 500) -> tuple[float, float]:
    """KID (mean, std over subsets), with torchmetrics' cubic polynomial kernel."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    metric = KernelInceptionDistance(feature=network, normalize=True, subsets=subsets, subset_size=size)
    metric.inception.eval()
    for k in range(0, len(real), batch_size):
        metric.update(real[k:k + batch_size], real=True)
    for k in range(0, len(fake), batch_size):
        metric.update(fake[k:k + batch_size], real=False)
    mean, std = metric.compute()
    return float(mean), float(std)


def _kth_neighbour_distances(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance of each row of ``x`` to its k-th nearest other row (self excluded)."""
    out = []
    for start in range(0, len(x), chunk):
        d = torch.cdist(x[start:start + chunk], x)
        out.append(d.kthvalue(k + 1, dim=1).values)  # the 1st value is the point itself (distance 0)
    return torch.cat(out)


def _inside_any_ball(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """For each point: whether it lies strictly inside the ball of some centre."""
    inside = []
    for start in range(0, len(points), chunk):
        d = torch.cdist(points[start:start + chunk], centres)  # (p, c)
        inside.append((d < radii[None, :]).any(dim=1))
    return torch.cat(inside)


def precision_recall(real_features: torch.Tensor, fake_features: torch.Tensor, k: int = 5) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with ``k``-nearest-neighbour balls."""
    real, fake = real_features.double(), fake_features.double()
    real_radii = _kth_neighbour_distances(real, k)
    fake_radii = _kth_neighbour_distances(fake, k)
    precision = _inside_any_ball(fake, real, real_radii).double().mean()
    recall = _inside_any_ball(real, fake, fake_radii).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


@torch.no_grad()
def predicted_classes(classifier, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The class the classifier reads in each image, (N,) on the CPU."""
    classifier.eval()
    return torch.cat([classifier.classify(images[k:k + batch_size]).argmax(1).cpu()
                      for k in range(0, len(images), batch_size)])


def shares_of(predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """The share of each class among predicted classes, (classes,)."""
    return torch.bincount(predicted, minlength=classes).double() / len(predicted)


def class_shares(classifier, images: torch.Tensor, classes: int, batch_size: int = 500) -> torch.Tensor:
    """The share of ``images`` the classifier puts in each class, (classes,)."""
    return shares_of(predicted_classes(classifier, images, batch_size), classes)


def label_accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """For a class-conditional generator: the share of its samples whose predicted class
    (:func:`predicted_classes`) is the label they were drawn for (does the generator follow its label?)."""
    return float((predicted == labels.cpu()).double().mean())


def coverage_figures(shares: torch.Tensor) -> dict:
    """``class_shares`` (a list), the largest and smallest share, and the entropy of the shares in
    bits relative to the uniform one (1 = every class equally often)."""
    p = shares.clamp(min=1e-12)
    entropy = float(-(shares * p.log2()).sum()) / math.log2(len(shares))
    return {"class_shares": [round(float(s), 4) for s in shares], "max_class_share": round(float(shares.max()), 4),
            "min_class_share": round(float(shares.min()), 4), "class_entropy": round(entropy, 4)}


def tstr_accuracy(make_classifier, samples: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor,
                  test_labels: torch.Tensor, epochs: int = 3, batch_size: int = 128, lr: float = 2e-3,
                  seed: int = 0, min_steps: int = 600) -> float:
    """Train a fresh classifier (``make_classifier()``) on generated ``samples`` with their ``labels``
    (floats in [0, 1]) for ``epochs``, or for up to 30 epochs until ``min_steps`` steps when there are
    few samples, then score it on real test images: the TSTR accuracy."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = make_classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    per_epoch = math.ceil(len(samples) / batch_size)
    epochs = max(epochs, min(30, math.ceil(min_steps / per_epoch)))
    steps = epochs * per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(samples), generator=generator)
        for k in range(0, len(samples), batch_size):
            idx = order[k:k + batch_size]
            loss = nn.functional.cross_entropy(model.classify(samples[idx]), labels[idx].to(model.device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model.classify(test_images[k:k + 500]).argmax(1) for k in range(0, len(test_images), 500)])
    return float((predicted.cpu() == test_labels.cpu()).double().mean())
