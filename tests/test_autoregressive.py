"""Exactness of the likelihoods, sampling and completion of the row and pixel LSTM generators."""

import itertools
import math

import pytest
import torch

from pixloom.errors import PixloomError
from pixloom.models import MODELS
from pixloom.models.autoregressive.pixel_lstm import PixelLSTM, PixelLSTMConfig
from pixloom.models.autoregressive.row_lstm import RowLSTM, RowLSTMConfig

GENERATORS = [(RowLSTM, RowLSTMConfig), (PixelLSTM, PixelLSTMConfig)]


def _uniform(model):
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    return model


@pytest.mark.parametrize("cls,config_cls", GENERATORS)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_uniform_bernoulli_scores_784_ln2(cls, config_cls, cell):
    model = _uniform(cls(config_cls(levels=2, cell=cell, hidden_size=16, num_layers=1)))
    images = torch.randint(0, 2, (5, 1, 28, 28), dtype=torch.uint8)
    nll = -model.log_prob(images)
    torch.testing.assert_close(nll, torch.full((5,), 784 * math.log(2.0)), rtol=0, atol=1e-3)
    out = model.loss({"image": images})
    assert abs(float(out["bits_per_dim"]) - 1.0) < 1e-6


@pytest.mark.parametrize("cls,config_cls", GENERATORS)
def test_uniform_categorical_scores_784_ln256(cls, config_cls):
    model = _uniform(cls(config_cls(levels=256, hidden_size=16, num_layers=1)))
    images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    torch.testing.assert_close(-model.log_prob(images), torch.full((3,), 784 * math.log(256.0)), rtol=1e-6, atol=1e-2)


@pytest.mark.parametrize("cls,config_cls", GENERATORS)
@pytest.mark.parametrize("levels,classes", [(2, 0), (3, 0), (2, 4)])
def test_probabilities_of_all_images_sum_to_one(cls, config_cls, levels, classes):
    """A valid (causal) autoregressive model puts total mass 1 on all levels**(H*W) images."""
    torch.manual_seed(0)
    model = cls(config_cls(height=2, width=3, levels=levels, num_classes=classes, hidden_size=8, num_layers=2))
    with torch.no_grad():  # make the distribution far from uniform
        model.head.bias.normal_(0, 2.0)
    images = torch.tensor(list(itertools.product(range(levels), repeat=6)), dtype=torch.uint8).view(-1, 1, 2, 3)
    label = torch.full((len(images),), classes - 1) if classes else None
    with torch.no_grad():
        total = torch.logsumexp(model.log_prob(images, label).double(), dim=0).exp()
    assert abs(float(total) - 1.0) < 1e-4


def test_pixel_lstm_is_causal():
    """d log p(x_i | x_<i) / d x_j == 0 for every j >= i (raster order)."""
    torch.manual_seed(0)
    model = PixelLSTM(PixelLSTMConfig(height=4, width=4, hidden_size=8))
    pixels = torch.rand(1, 16, 1, requires_grad=True)
    hidden, _ = model.rnn(model._inputs(pixels, None))
    logits = model._logits(hidden)[0, :, 0]  # (16,)
    for i in range(16):
        (grad,) = torch.autograd.grad(logits[i], pixels, retain_graph=True)
        assert torch.all(grad[0, i:] == 0), f"pixel {i} sees the future"
        if i > 0:
            assert grad[0, :i].abs().sum() > 0, f"pixel {i} ignores the past"


@pytest.mark.parametrize("cls,config_cls", GENERATORS)
def test_sample_and_complete_shapes_ranges_and_kept_pixels(cls, config_cls):
    torch.manual_seed(0)
    model = cls(config_cls(height=8, width=8, levels=256, hidden_size=16, num_layers=1, num_classes=3))
    g = torch.Generator().manual_seed(1)
    samples = model.sample(5, generator=g)
    assert samples.shape == (5, 1, 8, 8) and samples.dtype == torch.uint8
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    done = model.complete(images, known_rows=3, generator=g)
    assert torch.equal(done[:, :, :3], images[:, :, :3])
    assert not torch.equal(done[:, :, 3:], images[:, :, 3:])
    # same seed, same completions
    again = model.complete(images, known_rows=3, generator=torch.Generator().manual_seed(7))
    twice = model.complete(images, known_rows=3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(again, twice)


def test_pixel_lstm_completes_any_mask():
    model = PixelLSTM(PixelLSTMConfig(height=5, width=5, hidden_size=8, num_layers=1))
    images = torch.randint(0, 2, (3, 1, 5, 5), dtype=torch.uint8)
    mask = torch.rand(1, 5, 5) < 0.5
    done = model.complete(images, mask=mask)
    assert torch.equal(done[:, mask], images[:, mask])
    with pytest.raises(PixloomError, match="mask must have shape"):
        model.complete(images, mask=torch.ones(1, 4, 5, dtype=torch.bool))


def test_temperature_zero_is_deterministic_mode():
    model = RowLSTM(RowLSTMConfig(height=6, width=6, hidden_size=8, num_layers=1))
    a = model.sample(3, temperature=0)
    b = model.sample(3, temperature=0)
    assert torch.equal(a, b)


@pytest.mark.parametrize("cls,config_cls", GENERATORS)
def test_bad_images_are_rejected_in_one_line(cls, config_cls):
    model = cls(config_cls(height=8, width=8, levels=2, hidden_size=8, num_layers=1))
    cases = [
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "grayscale"),
        (torch.zeros(1, 1, 9, 8, dtype=torch.uint8), "8x8"),
        (torch.full((1, 1, 8, 8), 2, dtype=torch.uint8), r"\[0, 1\]"),
        (torch.zeros(1, 1, 8, 8), "integer"),
    ]
    for images, message in cases:
        with pytest.raises(PixloomError, match=message) as info:
            model.complete(images, known_rows=2)
        assert "\n" not in str(info.value)
    with pytest.raises(PixloomError, match="known_rows must lie in"):
        model.complete(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), known_rows=9)


def test_registry_names_match_classes():
    for name, cls in MODELS.items():
        assert cls.name == name and cls.summary
