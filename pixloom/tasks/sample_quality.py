"""Sample-quality figures of any generator, and the comparison report of several.

``sample_metrics`` draws samples with fixed seeds and scores them against real images of a data split
with the features of a pixloom classifier (:mod:`pixloom.metrics.sample_quality`): Fréchet and kernel
distance, precision and recall, class coverage and, for class-conditional models, TSTR. Every model is
compared on floats in [0, 1]; on binary data (binarized MNIST), a generator of intensities (a GAN) is
binarized as the data was: each pixel drawn from Bernoulli(intensity), with the seed of the run.
The comparison report of several generators is :mod:`pixloom.tasks.comparison`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from pixloom.data.registry import dataset_kind, load_dataset
from pixloom.errors import ArgumentError
from pixloom.metrics.sample_quality import (FeatureNetwork, class_shares, coverage_figures, features_of,
                                            frechet_distance, kernel_distance, label_accuracy, precision_recall,
                                            predicted_classes, shares_of, to_unit_floats, tstr_accuracy)
from pixloom.models.capabilities import Classifier, Sampler
from pixloom.models.image import ImageModel
from pixloom.tasks.common import check_positive_int, load_model, make_generator, require

DEFAULT_CLASSIFIER = "mnist-classifier"


def load_classifier(classifier, device="cpu"):
    source = classifier if isinstance(classifier, (str, Path)) else None
    model = require(load_model(classifier, device), Classifier, source)
    return model.eval()


def real_images(data: str, split: str, n: int, data_dir=None) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    if dataset_kind(data) != "images":
        raise ArgumentError("data", f"'{data}' holds captioned photos; sample metrics compare images")
    dataset = load_dataset(data, split, data_dir=data_dir)
    if len(dataset) < 2:
        raise ArgumentError("data", f"{data} ({split}) holds too few images")
    take = min(n, len(dataset))
    labels = None if dataset.labels is None else dataset.labels[:take]
    return to_unit_floats(dataset.images[:take], dataset.levels), labels, dataset.levels


def as_data_floats(images: torch.Tensor, model_levels: int, data_levels: int, generator: torch.Generator | None):
    """A generator's samples as floats in [0, 1] on the data's footing (binarized when the data is)."""
    unit = to_unit_floats(images, model_levels)
    if data_levels == 2 and model_levels != 2:
        unit = (torch.rand(unit.shape, generator=generator) < unit).float()
    return unit


def draw(model, n: int, seed: int, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """``n`` samples (levels, on the CPU), their labels (conditional models: 0, 1, 2, ... cycling)
    and the samples per second."""
    generator = make_generator(seed, model.device)
    classes = getattr(model.config, "num_classes", 0)
    labels = (torch.arange(n) % classes) if classes else None
    started = time.perf_counter()
    parts = []
    for k in range(0, n, batch_size):
        size = min(batch_size, n - k)
        part_labels = None if labels is None else labels[k:k + size]
        parts.append(model.sample(size, label=part_labels, generator=generator).cpu())
    seconds = time.perf_counter() - started
    return torch.cat(parts), labels, n / seconds


def _tstr_classifier(reference):
    from pixloom.models.classifiers.cnn import CNNClassifier, CNNClassifierConfig

    c = reference.config
    return lambda: CNNClassifier(CNNClassifierConfig(channels=c.channels, height=c.height, width=c.width,
                                                     levels=c.levels, num_classes=c.num_classes, width_factor=16,
                                                     feature_size=64, dropout=0.0, shift=0))


def sample_metrics(model, data: str = "binarized-mnist", split: str = "test", n: int = 10000,
                   seeds: tuple[int, ...] = (0,), classifier=DEFAULT_CLASSIFIER, data_dir=None, k: int = 5,
                   tstr: bool = True, device: str = "cpu", real=None, progress: bool = False) -> dict:
    """Sample-quality figures of a generator: the mean over ``seeds`` of each figure (and its spread,
    ``*_std``), from ``n`` samples per seed against ``n`` real images of ``split``."""
    source = model if isinstance(model, (str, Path)) else None
    model = require(load_model(model, device), Sampler, source)
    n = check_positive_int(n, "n", most=100_000)
    if n < 2 * k:
        raise ArgumentError("n", f"must be at least {2 * k} for {k}-nearest-neighbour balls, got {n}")
    if not seeds:
        raise ArgumentError("seeds", "is empty")
    classifier = load_classifier(classifier, device)
    if isinstance(model, ImageModel) and model.image_shape != classifier.image_shape:
        raise ArgumentError("data", f"the model makes {model.image_shape} images but the classifier reads "
                            f"{classifier.image_shape} images")
    real_floats, real_labels, data_levels = real if real is not None else real_images(data, split, n, data_dir)
    if isinstance(model, ImageModel) and tuple(real_floats.shape[1:]) != model.image_shape:
        raise ArgumentError("data", f"{data} holds {tuple(real_floats.shape[1:])} images, the model makes "
                            f"{model.image_shape}")
    network = FeatureNetwork(classifier)
    real_features = features_of(network, real_floats)
    per_seed = []
    for seed in seeds:
        levels, labels, rate = draw(model, n, seed)
        fake = as_data_floats(levels, model.config.levels, data_levels, torch.Generator().manual_seed(seed + 1))
        figures = {"fd": frechet_distance(network, real_floats, fake)}
        figures["kid"], figures["kid_subset_std"] = kernel_distance(network, real_floats, fake)
        figures.update(precision_recall(real_features, features_of(network, fake), k))
        predicted = predicted_classes(classifier, fake)  # read once: coverage and label accuracy
        coverage = coverage_figures(shares_of(predicted, classifier.config.num_classes))
        figures.update({key: value for key, value in coverage.items() if key != "class_shares"})
        if labels is not None:
            figures["label_accuracy"] = label_accuracy(predicted, labels)
        figures["samples_per_second"] = rate
        if tstr and labels is not None and real_labels is not None:
            test = real_images(data, "test", 10_000, data_dir) if real is None else real
            figures["tstr_accuracy"] = tstr_accuracy(_tstr_classifier(classifier), fake, labels, test[0], test[1],
                                                     seed=seed)
        per_seed.append((figures, coverage["class_shares"]))
    out = {"model": model.name, "run": None if source is None else str(source), "data": data, "split": split,
           "n_samples": n, "seeds": list(seeds), "classifier": str(classifier_name(classifier)), "k": k}
    for key in per_seed[0][0]:
        values = [f[key] for f, _ in per_seed]
        out[key] = round(float(np.mean(values)), 5)
        if len(values) > 1:
            out[key + "_std"] = round(float(np.std(values, ddof=1)), 5)
    out["class_shares"] = [round(float(v), 4) for v in np.mean([s for _, s in per_seed], axis=0)]
    return out


def classifier_name(classifier) -> str:
    return getattr(classifier, "source_name", classifier.name)


def real_floor(data: str = "binarized-mnist", n: int = 10000, classifier=DEFAULT_CLASSIFIER, data_dir=None,
               k: int = 5, device: str = "cpu") -> dict:
    """The figures of real images: the first ``n`` training images against the first ``n`` test images
    (the best a generator of this data can hope for at this ``n``)."""
    classifier = load_classifier(classifier, device)
    network = FeatureNetwork(classifier)
    real, _, _ = real_images(data, "test", n, data_dir)
    train, _, _ = real_images(data, "train", n, data_dir)
    figures = {"fd": frechet_distance(network, real, train)}
    figures["kid"], figures["kid_subset_std"] = kernel_distance(network, real, train)
    figures.update(precision_recall(features_of(network, real), features_of(network, train), k))
    figures.update(coverage_figures(class_shares(classifier, train, classifier.config.num_classes)))
    return {"model": "real train images", "data": data, "n_samples": len(train), **figures}
