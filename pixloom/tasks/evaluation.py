"""``pixloom.evaluate``: score any model on a data split, by what it is.

- likelihood models: NLL in nats per image (mean and its standard error over the images), bits per
  dimension, and for latent models the ELBO; ``iw_samples`` sets the IWAE estimate's K;
- other image models (the sequence autoencoder): the mean of each figure its loss reports;
- captioners: BLEU-1..4, METEOR, ROUGE-L, CIDEr (COCO caption evaluation).

Every figure in the result is a finite number: a NaN or infinite figure is an error, never printed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from pixloom.data.registry import dataset_kind, load_dataset
from pixloom.errors import ArgumentError, PixloomError
from pixloom.metrics.likelihood import evaluate_likelihood, evaluate_loss_figures
from pixloom.models.capabilities import Captioning, Classifier, Likelihood, Sampler, Trainable, Upscaler
from pixloom.models.gan.base import GAN
from pixloom.models.image import ImageModel
from pixloom.tasks.common import check_positive_int, check_seed, load_model


IW_ROWS_PER_BATCH = 65_536  # images x importance samples per progress step (K <= 256 keeps batch 256)


def evaluate(model, data: str, split: str = "valid", data_dir=None, limit: int | None = None,
             batch_size: int = 256, iw_samples: int | None = None, seed: int = 0, beam: int = 3,
             length_penalty: float | None = None, captions_out=None, cache_dir=None, scale: int | None = None,
             per_image: bool = False, samples: int = 0, classifier: str = "mnist-classifier", device: str = "cpu",
             progress: bool = True) -> dict:
    """Score ``model`` (an object, a run directory or a shipped name) on ``split`` of ``data``;
    returns one JSON-able dict of finite figures (see the module docstring). ``limit``: only the
    first N items. ``seed`` fixes the latent draws of the IWAE estimate and the ELBO. Super-resolvers are
    scored on a folder of ground-truth pictures (``data="folder:PATH"``): PSNR-Y and SSIM-Y beside
    bicubic's, at their own ``scale`` (``per_image`` adds each picture's figures). ``samples`` > 0 adds the
    sample-quality figures of a generator (Fréchet and kernel distance, precision, recall, class
    coverage; :mod:`pixloom.tasks.sample_quality`) from that many samples, by ``classifier``'s features."""
    source = str(model) if isinstance(model, (str, Path)) else None
    model = load_model(model, device)
    if limit is not None:
        check_positive_int(limit, "limit")
    check_positive_int(batch_size, "batch_size")
    seed = check_seed(seed)
    if isinstance(model, Upscaler):
        from pixloom.tasks.superres import evaluate_digit_sr, evaluate_superres

        if iw_samples is not None or captions_out is not None:
            raise ArgumentError("iw_samples" if iw_samples is not None else "captions_out",
                                f"does not apply to a super-resolver ({model.name})")
        if scale is not None and scale != model.scale:
            raise ArgumentError("scale", f"is {scale}, but this model was trained for x{model.scale}")
        if isinstance(model, ImageModel):  # a digit super-resolver: scored on a binary image data set
            return finite(evaluate_digit_sr(model, data, split, data_dir, limit, seed=seed, batch_size=batch_size,
                                            progress=progress, source=source))
        return finite(evaluate_superres(model, data, scale, limit, per_image, device, progress, source))
    if scale is not None:
        raise ArgumentError("scale", f"applies to super-resolvers only; {model.name} is not one")
    if isinstance(model, Classifier):
        return finite(evaluate_classifier(model, data, split, data_dir, limit, batch_size, progress, source))
    if isinstance(model, Captioning):
        from pixloom.tasks.captioning import evaluate_captioner

        for name, value in (("iw_samples", iw_samples),):
            if value is not None:
                raise ArgumentError(name, f"does not apply to a captioner ({model.name})")
        return finite(evaluate_captioner(model, data, split, data_dir, limit, beam, length_penalty, batch_size,
                                         cache_dir, captions_out, progress, source))
    if captions_out is not None:
        raise ArgumentError("captions_out", f"applies to captioners only; {model.name} is not one")
    if not isinstance(model, ImageModel):
        raise PixloomError(f"{model.name} models cannot be evaluated on data")
    if iw_samples is not None:  # checked before any data is read
        if not isinstance(model, Likelihood):
            raise ArgumentError("iw_samples", f"does not apply: {model.name} has no likelihood")
        if "iw_samples" not in model.evaluation_options:
            raise ArgumentError("iw_samples", f"does not apply: {model.name} has an exact likelihood")
        check_positive_int(iw_samples, "iw_samples")
    if not isinstance(model, (Likelihood, Trainable)):
        raise PixloomError(f"{model.name} has neither a likelihood nor a loss to evaluate")
    if dataset_kind(data) != "images":
        raise ArgumentError("data", f"'{data}' holds captioned photos; {model.name} is scored on images")
    dataset = load_dataset(data, split, data_dir=data_dir).subset(limit)
    head = {"model": model.name, "run": source, "data": data, "split": dataset.name.split("/")[-1]}
    if isinstance(model, GAN):  # no likelihood: its sample figures, on any data of its image size
        if not samples:
            raise ArgumentError("samples", f"must be above 0: {model.name} has no likelihood, only samples")
        return finite(_with_sample_metrics(head, model, data, split, data_dir, samples, classifier, seed))
    if dataset.levels != model.config.levels:
        raise ArgumentError("data", f"has {dataset.levels}-level pixels but the model was trained on "
                            f"{model.config.levels}-level pixels")
    model.check_images(dataset.images[:1])
    if not isinstance(model, Likelihood):
        result = evaluate_loss_figures(model, dataset, batch_size=batch_size, progress=progress)
        return finite(_with_sample_metrics({**head, **result}, model, data, split, data_dir, samples, classifier,
                                           seed))
    options = {} if iw_samples is None else {"iw_samples": iw_samples}
    if iw_samples is not None:  # K samples per image: smaller batches, so that progress shows every few seconds
        batch_size = max(1, min(batch_size, IW_ROWS_PER_BATCH // iw_samples))
    torch.manual_seed(seed)  # the IWAE estimate and ELBO draw latents: the same seed, the same figure
    started = time.perf_counter()
    result = evaluate_likelihood(model, dataset, batch_size=batch_size, progress=progress, **options)
    result = {**head, **result, "seed": seed, "seconds": round(time.perf_counter() - started, 2)}
    return finite(_with_sample_metrics(result, model, data, split, data_dir, samples, classifier, seed))


def _with_sample_metrics(result: dict, model, data, split, data_dir, samples: int, classifier, seed: int) -> dict:
    if not samples or not isinstance(model, Sampler):
        return result
    from pixloom.tasks.sample_quality import sample_metrics

    check_positive_int(samples, "samples")
    try:
        figures = sample_metrics(model, data, split, n=samples, seeds=(seed,), classifier=classifier,
                                 data_dir=data_dir, tstr=False)
    except PixloomError as exc:  # no classifier that reads these images: the likelihood still stands
        return {**result, "sample_metrics": f"skipped: {exc}"}
    keep = ("fd", "kid", "precision", "recall", "max_class_share", "class_entropy", "label_accuracy",
            "samples_per_second", "n_samples", "classifier")
    return {**result, "samples": {k: figures[k] for k in keep if k in figures}}


def finite(result: dict) -> dict:
    """``result`` if every number in it is finite; otherwise a one-line error naming the figure
    (a model whose weights produce NaN must not print a figure, nor invalid JSON)."""
    for key, value in result.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise PixloomError(f"the evaluation gave {key} = {value}: the model's outputs are not finite "
                               "(damaged weights, or a model that diverged)")
    return result


@torch.no_grad()
def evaluate_classifier(model, data: str, split: str, data_dir=None, limit: int | None = None, batch_size: int = 256,
                        progress: bool = True, source=None) -> dict:
    """Accuracy (and the mean cross-entropy) of a classifier on a labelled image split."""
    dataset = load_dataset(data, split, data_dir=data_dir).subset(limit)
    if dataset.labels is None:
        raise ArgumentError("data", f"'{data}' has no labels to score a classifier on")
    model.eval()
    correct, nll = 0, 0.0  # images enter as intensities in [0, 1], so binary data is read too
    from tqdm.auto import tqdm

    for start in tqdm(range(0, len(dataset), batch_size), desc="eval", unit="batch", disable=not progress, leave=False):
        images = dataset.images[start:start + batch_size].float() / (dataset.levels - 1)
        logits = model.classify(images)
        label = dataset.labels[start:start + batch_size].to(logits.device)
        correct += int((logits.argmax(1) == label).sum())
        nll += float(torch.nn.functional.cross_entropy(logits, label, reduction="sum"))
    n = len(dataset)
    return {"model": model.name, "run": source, "data": data, "split": dataset.name.split("/")[-1],
            "accuracy": round(correct / n, 5), "error_rate": round(1 - correct / n, 5),
            "cross_entropy": round(nll / n, 5), "n_images": n}
