"""Every shipped model loads, does what it declares, and still scores its figure on a small slice.

The figures (measured 2026-12-07 with the commands in docs/benchmarks.md, 2 CPU threads) are exact
for the autoregressive models and seeded for DRAW; a damaged or replaced weight file moves them far
beyond the tolerances. The slices are the first images of the embedded test sample, which are the
first images of the binarized-MNIST test split.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import pixloom
from pixloom.models.capabilities import Captioning, Classifier, Completer, Likelihood, Sampler, Upscaler
from pixloom.tasks.catalog import list_shipped

ROOT = Path(__file__).resolve().parents[1]

# name -> (evaluate() keyword arguments, expected nll_nats, tolerance)
FIGURES = {
    "mnist-pixelrnn": ({"limit": 200}, 76.631, 0.05),
    "mnist-pixelrnn-row": ({"limit": 200}, 81.161, 0.05),
    "mnist-draw": ({"limit": 100, "iw_samples": 10, "seed": 0}, 79.722, 0.3),
}


# shipped models with a test of their own below
OTHERS = {"flickr8k-captioner", "mnist-classifier", "photo-sr-x2", "photo-sr-x3", "photo-sr-x4", "mnist-sr-x4",
          "mnist-mlp-gan", "mnist-lstm-gan"}


def test_every_shipped_model_is_covered():
    assert {m["name"] for m in list_shipped()} == set(FIGURES) | OTHERS


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_shipped_generator_scores_its_figure_and_draws(name):
    options, expected, tolerance = FIGURES[name]
    model = pixloom.from_pretrained(name)
    assert isinstance(model, (Likelihood, Sampler))
    result = pixloom.evaluate(model, "sample-binarized", split="test", progress=False, **options)
    assert result["nll_nats"] == pytest.approx(expected, abs=tolerance), result
    images = pixloom.sample(model, n=2, seed=0)
    assert images.shape == (2, 1, 28, 28) and images.dtype == torch.uint8 and int(images.max()) <= 1
    if isinstance(model, Completer):
        digit = pixloom.load_dataset("sample-binarized", "test").images[:1]
        completions = pixloom.complete(model, digit, known_rows=20, n=2, seed=0)
        assert torch.equal(completions[0, :, :, :20], digit[:, :, :20].expand(2, 1, 20, 28))


def test_shipped_captioner_describes_the_docs_photos():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("pycocoevalcap")
    from pixloom.data.captions import tokenize
    from pixloom.metrics.captions import corpus_bleu4

    model = pixloom.from_pretrained("flickr8k-captioner")
    assert isinstance(model, Captioning)
    examples = json.loads((ROOT / "bench/results/caption.json").read_text())["runs"]["caption-ensemble"]
    examples = examples["docs_examples"]["examples"]
    photos = [ROOT / "docs/img" / e["thumbnail"] for e in examples]
    captions = pixloom.caption(model, photos, beam=3)
    references = [[tokenize(r) for r in e["references"]] for e in examples]
    bleu = corpus_bleu4(references, captions)
    assert bleu == pytest.approx(0.302, abs=0.03), captions  # BLEU-4 of the 160-pixel thumbnails
    shuffled = corpus_bleu4(references[1:] + references[:1], captions)
    assert shuffled < bleu - 0.1  # the captions describe their own photos


def test_shipped_classifier_reads_the_test_digits():
    model = pixloom.from_pretrained("mnist-classifier")
    assert isinstance(model, Classifier)
    result = pixloom.evaluate(model, "sample", split="test", progress=False)
    assert result["n_images"] == 1000 and result["accuracy"] >= 0.99, result  # measured 0.996
    binarized = pixloom.evaluate(model, "sample-binarized", split="test", progress=False)
    assert binarized["accuracy"] >= 0.985, binarized  # measured 0.993: it also judges binary samples


@pytest.mark.parametrize("name, psnr, bicubic", [("photo-sr-x2", 32.254, 28.752), ("photo-sr-x3", 28.482, 25.852),
                                                 ("photo-sr-x4", 25.875, 23.937)])
def test_shipped_photo_upscalers_beat_bicubic_on_the_docs_photos(name, psnr, bicubic, tmp_path):
    for photo in sorted((ROOT / "docs/img").glob("caption-dev-0[1-5].jpg")):
        (tmp_path / photo.name).write_bytes(photo.read_bytes())
    model = pixloom.from_pretrained(name)
    assert isinstance(model, Upscaler)
    result = pixloom.evaluate(model, f"folder:{tmp_path}", progress=False)
    assert result["n_images"] == 5
    assert result["bicubic_psnr_y"] == pytest.approx(bicubic, abs=0.01)  # the degradation is fixed
    assert result["psnr_y"] == pytest.approx(psnr, abs=0.05), result


def test_shipped_digit_upscaler_scores_its_likelihood():
    model = pixloom.from_pretrained("mnist-sr-x4")
    assert isinstance(model, Upscaler)
    result = pixloom.evaluate(model, "sample-binarized", split="test", limit=200, progress=False)
    assert result["cond_nll_nats"] == pytest.approx(49.028, abs=0.05), result
    assert result["mean_psnr"] > result["bicubic_psnr"] + 2  # measured 15.65 against 13.03


@pytest.mark.parametrize("name, fd, least, most", [("mnist-mlp-gan", 78.05, 0.01, 0.25),
                                                    ("mnist-lstm-gan", 18.23, 0.05, 0.15)])
def test_shipped_gans_draw_every_digit(name, fd, least, most):
    figures = pixloom.sample_metrics(name, data="sample", n=500, seeds=(0,))
    assert figures["fd"] == pytest.approx(fd, abs=3), figures
    assert figures["min_class_share"] > least and figures["max_class_share"] < most, figures
