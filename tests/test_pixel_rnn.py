"""PixelRNN: causality of every layer and of the model, exact likelihoods, cached == naive sampling.

Causality is checked on full Jacobians of tiny maps. Raster order: (i', j') is *before* (i, j) when
i' < i, or i' == i and j' < j. With colour groups (feature f in group f % C) the rule per layer is

* MaskedConv2d "A": out (i, j, group k) may depend on inputs before (i, j), and at (i, j) itself
  only on input groups < k (with one colour: not at all).
* MaskedConv2d "B", RowLSTMLayer, DiagonalBiLSTMLayer: as A, but at (i, j) on input groups <= k
  (with one colour: the whole input at (i, j)).
* PixelRNN: the logits of colour k at pixel (i, j) depend on pixels before (i, j), and at (i, j) on
  colours < k only (with one colour: not on pixel (i, j)).

Every gradient outside these sets must be exactly zero; and each output must depend on some earlier
pixel (and, where allowed, on the centre), so the masks do not hide everything.
"""

import itertools
import math

import pytest
import torch

from pixloom.errors import PixloomError
from pixloom.models import MODELS
from pixloom.models.autoregressive.pixel_rnn import PixelRNN, PixelRNNConfig, _CachedSampler, _NaiveSampler
from pixloom.nn.masked_conv import MaskedConv2d
from pixloom.nn.spatial_lstm import DiagonalBiLSTMLayer, RowLSTMLayer, _diagonal_view, _ranges, lstm_scan, skew, unskew

from conftest import tiny_binary_dataset

VARIANTS = ["row_lstm", "diagonal_bilstm"]


def _model(variant, seed=0, **overrides):
    torch.manual_seed(seed)
    config = dict(height=4, width=5, levels=2, variant=variant, num_layers=2, hidden=6)
    config.update(overrides)
    return PixelRNN(PixelRNNConfig(**config))


# -- causality -------------------------------------------------------------------------------------
def _jacobian(fn, x):
    """fn: (1, Cin, H, W) -> (Cout, H, W); returns d out / d in, shape (Cout, H, W, Cin, H, W)."""
    return torch.autograd.functional.jacobian(fn, x)[:, :, :, 0]


def _check_causal(jac, in_groups, out_groups, centre: str):
    """Assert the dependency pattern stated in the module docstring (centre: "A" or "B")."""
    c_out, h, w, c_in = jac.shape[:4]
    order = torch.arange(h * w).view(h, w)
    for o, i, j in itertools.product(range(c_out), range(h), range(w)):
        grad = jac[o, i, j]  # (Cin, H, W)
        before = (order < order[i, j]).expand(c_in, h, w)
        at = torch.zeros(c_in, h, w, dtype=torch.bool)
        seen = in_groups < out_groups[o] if centre == "A" else in_groups <= out_groups[o]
        at[:, i, j] = seen
        where = f"output {o} at ({i}, {j})"
        assert torch.all(grad[~(before | at)] == 0), f"{where} sees the future or a later colour"
        if order[i, j] > 0:
            assert grad[before].abs().sum() > 0, f"{where} ignores every earlier pixel"
        if seen.any():
            assert grad[at].abs().sum() > 0, f"{where} ignores the allowed colours of its own pixel"


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("channels", [1, 3])
def test_masked_conv_is_causal(mask_type, channels):
    torch.manual_seed(0)
    conv = MaskedConv2d(6, 6, 3, mask_type, channels=channels)
    groups = torch.arange(6) % channels
    jac = _jacobian(lambda x: conv(x)[0], torch.randn(1, 6, 4, 5))
    _check_causal(jac, groups, groups, mask_type)


@pytest.mark.parametrize("layer_cls", [RowLSTMLayer, DiagonalBiLSTMLayer])
@pytest.mark.parametrize("channels", [1, 3])
def test_spatial_lstm_layers_are_causal_mask_b(layer_cls, channels):
    torch.manual_seed(0)
    layer = layer_cls(6, 4, channels=channels)  # 4 units: gate blocks do not line up with 3 colours
    jac = _jacobian(lambda t: layer(t)[0], torch.randn(1, 6, 4, 5))
    _check_causal(jac, torch.arange(6) % channels, torch.arange(4) % channels, "B")


def test_row_lstm_with_learned_initial_state_is_causal():
    torch.manual_seed(0)
    layer = RowLSTMLayer(4, 2, k=5, learn_initial_state=True)
    with torch.no_grad():
        layer.initial_state.normal_()
    jac = _jacobian(lambda t: layer(t)[0], torch.randn(1, 4, 3, 6))
    _check_causal(jac, torch.zeros(4), torch.zeros(2), "B")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("channels,levels", [(1, 2), (1, 256), (3, 2), (3, 256)])
def test_pixel_rnn_is_causal(variant, channels, levels):
    """Logits of colour k at (i, j) depend on earlier pixels and colours < k of (i, j) only."""
    model = _model(variant, channels=channels, levels=levels, hidden=8)  # 8: gate blocks misalign with colours
    mix = torch.randn(levels)

    def logits(x):
        out = model._logits(x)[0]  # (C, H, W[, L])
        return out if levels == 2 else (out * mix).sum(-1)

    jac = _jacobian(logits, torch.rand(1, channels, 4, 5))
    colours = torch.arange(channels)
    _check_causal(jac, colours, colours, "A")


def test_skew_and_unskew_are_inverse_views():
    x = torch.arange(2 * 3 * 4 * 2).float().view(2, 3, 4, 2)  # (N, H, W, D)
    s = skew(x)
    assert s.shape == (2, 3, 6, 2)
    for i, j in itertools.product(range(3), range(4)):
        assert torch.equal(s[:, i, i + j], x[:, i, j])
    assert s.abs().sum() == x.abs().sum()  # zeros elsewhere
    assert torch.equal(unskew(s.contiguous(), 4), x)


def test_scan_reads_the_skewed_columns_as_diagonal_views():
    """lstm_scan's step t (columns stored right to left) is exactly the paper's skewed column t."""
    x = torch.randn(2, 3, 4, 5, 2)  # (G, B, H, W, C)
    skewed = skew(x.flatten(0, 1)).view(2, 3, 4, 8, 2)  # (G, B, H, H + W - 1, C)
    for t, (a, b) in enumerate(_ranges(x, diagonal=True)):
        column = skewed[:, :, :, t]
        assert torch.equal(_diagonal_view(x.flip(3), t), column[:, :, a:b])
        assert column[:, :, :a].abs().sum() == 0 and column[:, :, b:].abs().sum() == 0


@pytest.mark.parametrize("diagonal", [False, True])
def test_lstm_scan_backward_matches_finite_differences(diagonal):
    torch.manual_seed(0)
    new = lambda *shape: torch.randn(*shape, dtype=torch.double, requires_grad=True)  # noqa: E731
    if diagonal:  # x (G, B, H, W, 4h), two taps (same row, row above)
        args = (new(2, 2, 3, 4, 8), new(2, 2, 2, 8))
        fn = lambda x, w: lstm_scan(x, w, (0, -1), diagonal=True)  # noqa: E731
    else:  # x (T, G, B, L, 4h), three taps, learned-style initial state
        args = (new(3, 1, 2, 4, 8), new(3, 1, 2, 8), new(1, 2, 4, 2), new(1, 2, 4, 2))
        fn = lambda x, w, h0, c0: lstm_scan(x, w, (-1, 0, 1), h0=h0, c0=c0)  # noqa: E731
    assert torch.autograd.gradcheck(fn, args)


@pytest.mark.parametrize("layer_cls", [RowLSTMLayer, DiagonalBiLSTMLayer])
def test_layers_do_not_depend_on_memory_format(layer_cls):
    torch.manual_seed(0)
    layer = layer_cls(6, 4, channels=3)
    x = torch.randn(2, 6, 5, 7)
    torch.testing.assert_close(layer(x), layer(x.contiguous(memory_format=torch.channels_last)))


# -- exact likelihood ---------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape,levels,classes", [((1, 2, 3), 2, 0), ((1, 2, 3), 2, 3), ((3, 1, 2), 2, 0),
                                                  ((1, 2, 2), 3, 0), ((1, 3, 1), 2, 0)])
def test_probabilities_of_all_images_sum_to_one(variant, shape, levels, classes):
    """Total mass 1 over all levels**(C*H*W) images: 64 binary 2x3 grey or 1x2 RGB images, 81 3-level."""
    c, h, w = shape
    model = _model(variant, channels=c, height=h, width=w, levels=levels, num_classes=classes)
    with torch.no_grad():  # far from uniform
        model.head.bias.normal_(0, 2.0)
    images = torch.tensor(list(itertools.product(range(levels), repeat=c * h * w)), dtype=torch.uint8)
    images = images.view(-1, c, h, w)
    label = torch.full((len(images),), classes - 1) if classes else None
    with torch.no_grad():
        total = torch.logsumexp(model.log_prob(images, label).double(), dim=0).exp()
    assert abs(float(total) - 1.0) < 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
def test_uniform_head_scores_784_ln2(variant):
    model = _model(variant, height=28, width=28, num_layers=1, hidden=4)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    images = torch.randint(0, 2, (2, 1, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        nll = -model.log_prob(images)
        bpd = model.loss({"image": images})["bits_per_dim"]
    torch.testing.assert_close(nll, torch.full((2,), 784 * math.log(2.0)), rtol=0, atol=1e-3)
    assert abs(float(bpd) - 1.0) < 1e-6


@pytest.mark.parametrize("variant", VARIANTS)
def test_short_training_run_lowers_the_loss(variant):
    data = tiny_binary_dataset(n=32, size=6)
    batch = data.get_batch(torch.arange(32))
    model = _model(variant, height=6, width=6, hidden=8)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        before = float(model.loss(batch)["loss"])
    for _ in range(15):
        optimiser.zero_grad()
        model.loss(batch)["loss"].backward()
        optimiser.step()
    with torch.no_grad():
        after = float(model.loss(batch)["loss"])
    assert after < 0.8 * before


def test_saved_model_loads_with_identical_likelihoods(tmp_path):
    model = _model("diagonal_bilstm", channels=3, levels=256)
    images = torch.randint(0, 256, (2, 3, 4, 5), dtype=torch.uint8)
    loaded = PixelRNN.from_pretrained(model.save_pretrained(tmp_path / "m"))
    with torch.no_grad():
        torch.testing.assert_close(loaded.log_prob(images), model.log_prob(images), rtol=0, atol=0)


# -- sampling -------------------------------------------------------------------------------------------
CASES = [(1, 2, {}), (1, 256, {}), (3, 256, {}), (1, 2, {"num_classes": 3})]


@pytest.mark.parametrize("variant,channels,levels,extra", [(v, *case) for v in VARIANTS for case in CASES]
                         + [("row_lstm", 3, 2, {"learn_initial_state": True, "row_kernel": 5})])
def test_cached_sampler_equals_naive(variant, channels, levels, extra):
    """Same seed, same images; and every logit the cached sampler computes matches the full network."""
    model = _model(variant, channels=channels, levels=levels, **extra)
    if extra.get("learn_initial_state"):
        with torch.no_grad():
            model.layers[0].initial_state.normal_()
    cached = model.sample(3, generator=torch.Generator().manual_seed(5))
    naive = model.sample_naive(3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(cached, naive)
    assert cached.unique().numel() > 1
    logits = {}
    for sampler in (_CachedSampler, _NaiveSampler):
        recorded = logits[sampler] = []

        class Recording(sampler):
            def logits(self, i, j, k):
                out = super().logits(i, j, k)
                recorded.append(out)
                return out

        with torch.no_grad():
            model._generate(*model._blank(2), 1.0, None, torch.Generator().manual_seed(1), Recording)
    assert len(logits[_CachedSampler]) == channels * 4 * 5
    torch.testing.assert_close(torch.stack(logits[_CachedSampler]), torch.stack(logits[_NaiveSampler]),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_cached_completion_equals_naive_for_any_mask(variant):
    """Known pixels anywhere (even single colours) make the cached sampler catch up in runs."""
    model = _model(variant, channels=3, levels=4)
    images = torch.randint(0, 4, (3, 3, 4, 5), dtype=torch.uint8)
    known = torch.rand(3, 3, 4, 5, generator=torch.Generator().manual_seed(0)) < 0.5
    known[:, :, 0] = True  # a fully known first row
    runs = {}
    for name, sampler in [("cached", None), ("naive", _NaiveSampler)]:
        g = torch.Generator().manual_seed(3)
        if sampler is None:
            runs[name] = model.complete(images, mask=known, generator=g)
        else:
            with torch.no_grad():
                runs[name] = model._generate(images, known, 1.0, None, g, sampler)
    assert torch.equal(runs["cached"], runs["naive"])
    assert torch.equal(runs["cached"][known], images[known])


@pytest.mark.parametrize("variant", VARIANTS)
def test_sample_and_complete_shapes_ranges_and_kept_pixels(variant):
    model = _model(variant, height=6, width=6, levels=256, num_classes=3)
    g = torch.Generator().manual_seed(1)
    samples = model.sample(4, generator=g, label=torch.tensor([2]))
    assert samples.shape == (4, 1, 6, 6) and samples.dtype == torch.uint8
    assert samples.unique().numel() > 10  # 256 levels really drawn
    images = torch.randint(0, 256, (3, 1, 6, 6), dtype=torch.uint8)
    done = model.complete(images, known_rows=2, generator=g)
    assert done.shape == images.shape and done.dtype == torch.uint8
    assert torch.equal(done[:, :, :2], images[:, :, :2])
    assert not torch.equal(done[:, :, 2:], images[:, :, 2:])
    again = model.complete(images, known_rows=2, generator=torch.Generator().manual_seed(7))
    twice = model.complete(images, known_rows=2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(again, twice)
    assert torch.equal(model.complete(images, known_rows=6), images)
    binary = _model(variant)
    assert int(binary.sample(3).max()) <= 1
    assert torch.equal(binary.sample(2, temperature=0), binary.sample(2, temperature=0))


# -- errors ---------------------------------------------------------------------------------------------
def test_bad_input_is_rejected_in_one_line():
    model = _model("row_lstm", height=8, width=8)
    good = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    cases = [
        (lambda: model.complete(torch.zeros(1, 1, 9, 8, dtype=torch.uint8), known_rows=2), "8x8"),
        (lambda: model.complete(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), known_rows=2), "grayscale"),
        (lambda: model.log_prob(torch.zeros(1, 3, 8, 8, dtype=torch.uint8)), "grayscale"),
        (lambda: model.log_prob(torch.full((1, 1, 8, 8), 2, dtype=torch.uint8)), r"\[0, 1\]"),
        (lambda: model.complete(torch.zeros(1, 1, 8, 8), known_rows=2), "integer"),
        (lambda: model.complete(good, mask=torch.ones(1, 4, 8, dtype=torch.bool)), "mask must have shape"),
        (lambda: model.complete(good, mask=torch.ones(7, 8, dtype=torch.bool)), "mask must have shape"),
        (lambda: model.complete(good, known_rows=9), "known_rows"),
        (lambda: model.complete(good, known_rows=-1), "known_rows"),
        (lambda: model.complete(good), "exactly one"),
        (lambda: model.sample(0), "at least 1"),
        (lambda: model.sample(2, label=torch.tensor([1])), "without class"),
        (lambda: PixelRNN(PixelRNNConfig(variant="diagonal")), "variant"),
        (lambda: PixelRNN(PixelRNNConfig(row_kernel=2)), "row_kernel"),
    ]
    for call, message in cases:
        with pytest.raises(PixloomError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


def test_registered():
    assert MODELS["pixel-rnn"] is PixelRNN and PixelRNN.summary
