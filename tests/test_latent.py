"""Latent-variable image models: IWAE bounds, DRAW's attention, training, generation, saving, CLI."""

import json
import math

import pytest
import torch
from PIL import Image

import pixloom
from pixloom.cli import main
from pixloom.errors import PixloomError
from pixloom.models.autoregressive.row_lstm import RowLSTM, RowLSTMConfig
from pixloom.models.latent.draw import DRAW, DRAWConfig
from pixloom.models.latent.rvae import RecurrentVAE, RecurrentVAEConfig
from pixloom.models.latent.seq_autoencoder import (SeqAutoencoder, SeqAutoencoderConfig, diagonal_gmm_log_probs,
                                                   fit_diagonal_gmm)
from pixloom.nn import attention

from conftest import tiny_binary_dataset

TINY = dict(height=6, width=6, hidden_size=16)
MODELS = {
    "seq-ae": lambda: SeqAutoencoder(SeqAutoencoderConfig(**TINY, latent_size=4, mixture_components=2)),
    "seq-ae-gru-256": lambda: SeqAutoencoder(SeqAutoencoderConfig(**TINY, levels=256, cell="gru", latent_size=4,
                                                                  decoder_reads_rows=True, mixture_components=2)),
    "rvae": lambda: RecurrentVAE(RecurrentVAEConfig(**TINY, latent_size=4)),
    "rvae-rows": lambda: RecurrentVAE(RecurrentVAEConfig(**TINY, latent_size=4, decoder_reads_rows=True)),
    "draw": lambda: DRAW(DRAWConfig(**TINY, steps=3, latent_size=4)),
    "draw-no-attention": lambda: DRAW(DRAWConfig(**TINY, steps=3, latent_size=4, attention=False)),
    "draw-iwae": lambda: DRAW(DRAWConfig(**TINY, steps=3, latent_size=4, iw_train_samples=3)),
    "rvae-iwae": lambda: RecurrentVAE(RecurrentVAEConfig(**TINY, latent_size=4, iw_train_samples=4)),
}


def _make(key, seed=0):
    torch.manual_seed(seed)
    return MODELS[key]()


def _images(model, n=64, seed=0):
    data = tiny_binary_dataset(n=n, seed=seed)
    if model.config.levels == 2:
        return data
    data.images = data.images * 255  # 0 / 255 on 256 levels
    data.levels = 256
    return data


# -- IWAE ---------------------------------------------------------------------------------------
def _z_sensitive_vae(latent_size=2, **options):
    """A VAE whose decoder depends strongly on z and whose q(z|x) is close to the prior, so the
    ELBO is loose and importance weighting has something to gain."""
    torch.manual_seed(0)
    model = RecurrentVAE(RecurrentVAEConfig(**TINY, latent_size=latent_size, **options))
    with torch.no_grad():
        for layer in (model.z_to_state, model.z_to_input, model.head):
            layer.weight.mul_(4)
        model.posterior.weight.mul_(0.1)
        model.posterior.bias.zero_()
    return model


def _z_sensitive_draw(**options):
    torch.manual_seed(0)
    model = DRAW(DRAWConfig(**TINY, steps=2, latent_size=2, **options))
    with torch.no_grad():
        model.decoder.weight_ih.mul_(4)
        model.write_head.weight.mul_(4)
        model.posterior.weight.mul_(0.1)
        model.posterior.bias.zero_()
    return model


@pytest.mark.parametrize("make", [_z_sensitive_vae, _z_sensitive_draw])
def test_iwae_bound_tightens_with_k_and_stays_above_the_elbo(make):
    model = make()
    images = tiny_binary_dataset(n=64).images
    means = {}
    for k in (1, 10, 100):
        torch.manual_seed(0)
        out = model.nll(images, iw_samples=k)
        assert out["nll_nats"].shape == out["elbo_nats"].shape == (64,)
        # log(mean w) >= mean(log w) (Jensen) for every image: the estimate stays above the ELBO
        assert torch.all(out["nll_nats"] <= -out["elbo_nats"] + 1e-4)
        means[k] = (float(out["nll_nats"].mean()), float(out["nll_nats"].std()) / 8)
    noise = 2 * max(se for _, se in means.values())
    assert means[1][0] >= means[10][0] - noise
    assert means[10][0] >= means[100][0] - noise
    assert means[1][0] > means[100][0]


def test_iwae_converges_to_the_exact_likelihood_of_a_one_dimensional_latent():
    """With z in R^1, log p(x) = log int p(x|z) p(z) dz by quadrature; IWAE with many samples,
    computed in many chunks, must agree."""
    model = _z_sensitive_vae(latent_size=1)
    images = tiny_binary_dataset(n=4).images
    z = torch.linspace(-9, 9, 3601).unsqueeze(1)  # (Z, 1)
    with torch.no_grad():
        exact = []
        for image in images:
            log_px_z = -torch.nn.functional.binary_cross_entropy_with_logits(
                model.decoder_logits(z), image.float().expand(len(z), -1, -1, -1), reduction="none").flatten(1).sum(1)
            log_joint = log_px_z - 0.5 * z[:, 0] ** 2 - 0.5 * math.log(2 * math.pi)
            exact.append(float(torch.logsumexp(log_joint.double(), 0) + math.log(float(z[1] - z[0]))))
    model.iw_max_rows = 1000  # 250 samples per chunk: 8 chunks
    torch.manual_seed(0)
    estimate = model.nll(images, iw_samples=2000)["nll_nats"]
    torch.testing.assert_close(-estimate.double(), torch.tensor(exact, dtype=torch.float64), atol=0.05, rtol=0)


@pytest.mark.parametrize("make", [_z_sensitive_vae, _z_sensitive_draw])
def test_iwae_training_objective_is_the_k_sample_bound_that_eval_reports(make):
    """iw_train_samples = k: the loss is the k-sample IWAE bound (Burda et al. 2016), the same
    number ``nll(iw_samples=k)`` estimates from the same draws, and above the ELBO of those draws."""
    model = make()
    model.config.iw_train_samples = 6
    model.eval()
    images = tiny_binary_dataset(n=16).images
    torch.manual_seed(3)
    with torch.no_grad():
        out = model.loss({"image": images})
    torch.manual_seed(3)
    reported = model.nll(images, iw_samples=6)
    assert float(out["iwae_nats"]) == pytest.approx(-float(reported["nll_nats"].mean()), abs=1e-4)
    assert float(out["elbo_nats"]) == pytest.approx(float(reported["elbo_nats"].mean()), abs=1e-4)
    assert float(out["loss"]) == pytest.approx(-float(out["iwae_nats"]) / model.num_dims, rel=1e-6)
    assert float(out["iwae_nats"]) > float(out["elbo_nats"]) + 0.1  # a loose ELBO: k samples gain


def test_iwae_training_weights_the_prior_ratio_by_the_kl_warmup():
    model = _z_sensitive_vae()
    model.config.iw_train_samples, model.config.kl_warmup_steps = 4, 10
    model.train()
    images = tiny_binary_dataset(n=8).images
    weights = [float(model.loss({"image": images})["kl_weight"]) for _ in range(3)]
    assert weights == pytest.approx([0.0, 0.1, 0.2])  # the buffer counts steps as in ELBO training
    model.eval()
    assert float(model.loss({"image": images})["kl_weight"]) == 1.0  # validation scores the exact bound


# -- the doubly reparameterized gradient (DReG) for q ----------------------------------------------
def _trained_gradient(model, images, seed):
    """The gradient of one training loss over the trainable parameters, flattened."""
    model.train()
    model.zero_grad()
    torch.manual_seed(seed)
    model.loss({"image": images})["loss"].backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])


@pytest.mark.parametrize("make", [_z_sensitive_vae, _z_sensitive_draw])
def test_dreg_gradient_is_the_iwae_gradient_of_q_with_less_noise(make):
    """Tucker et al. 2019: the doubly reparameterized estimator has the same expectation as the
    plain reparameterized IWAE gradient of q's parameters, and a smaller variance. Each row of a
    batch of 2,000 copies of two images is an independent 4-sample estimate; the reference is the
    plain gradient averaged over 20,000. Leaving q's parameters live inside log q (a wrong DReG)
    misses the reference by about 100 %; DReG lands within a few per cent."""
    plain = make(iw_train_samples=4, freeze_generative=True)
    dreg = make(iw_train_samples=4, freeze_generative=True, dreg=True)
    images = tiny_binary_dataset(n=2).images
    many = images.repeat(2000, 1, 1, 1)
    reference = sum(_trained_gradient(plain, many, seed) for seed in range(10, 15)) / 5
    g_dreg = [_trained_gradient(dreg, images.repeat(1000, 1, 1, 1), seed) for seed in (1, 2)]
    g_plain = [_trained_gradient(plain, images.repeat(1000, 1, 1, 1), seed) for seed in (1, 2)]

    def relative(a, b):
        return float((a - b).norm() / b.norm())
    assert relative((g_dreg[0] + g_dreg[1]) / 2, reference) < 0.2
    assert relative(g_dreg[0], g_dreg[1]) < 0.6 * relative(g_plain[0], g_plain[1])  # less noise
    wrong = make(iw_train_samples=4, freeze_generative=True, dreg=True)
    wrong._log_weights_dreg = lambda im, kl_weight=1.0: (lambda w: (w, w))(wrong._log_weights(im, kl_weight))
    assert relative(_trained_gradient(wrong, many, 1), reference) > 0.5  # the check can fail


@pytest.mark.parametrize("make", [_z_sensitive_vae, _z_sensitive_draw])
def test_dreg_loss_is_the_bound_and_only_q_trains(make):
    """Under freeze_generative only q's parameters get gradients, a step leaves p(x, z) as it was,
    and the DReG loss reports the same k-sample bound the plain one does on the same draws."""
    images = tiny_binary_dataset(n=8).images
    plain, dreg = make(iw_train_samples=3, freeze_generative=True), make(iw_train_samples=3, freeze_generative=True, dreg=True)
    for model in (plain, dreg):
        model.train()
    torch.manual_seed(5)
    plain_out = plain.loss({"image": images})
    torch.manual_seed(5)
    dreg_out = dreg.loss({"image": images})
    assert float(dreg_out["loss"].detach()) == pytest.approx(float(plain_out["loss"].detach()), rel=1e-5)
    assert float(dreg_out["iwae_nats"]) == pytest.approx(float(plain_out["iwae_nats"]), rel=1e-5)
    trained = {n for n, p in dreg.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(dreg.inference_parameter_prefixes) for n in trained)
    assert "posterior.weight" in trained and len(trained) < len(list(dreg.parameters()))
    before = {n: p.detach().clone() for n, p in dreg.named_parameters()}
    optimizer = torch.optim.Adam([p for p in dreg.parameters() if p.requires_grad], lr=1e-2)
    dreg_out["loss"].backward()
    optimizer.step()
    for name, p in dreg.named_parameters():
        assert torch.equal(p, before[name]) != (name in trained), name


@pytest.mark.parametrize("make", [_z_sensitive_vae, _z_sensitive_draw])
def test_short_dreg_training_tightens_the_bound_of_a_fixed_model(make):
    model = make(iw_train_samples=4, freeze_generative=True, dreg=True)
    images = tiny_binary_dataset(n=64).images

    def bound():
        torch.manual_seed(1)
        return float(model.nll(images, iw_samples=4)["nll_nats"].mean())
    before = bound()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(30):
        optimizer.zero_grad()
        model.loss({"image": images})["loss"].backward()
        optimizer.step()
    assert bound() < before - 0.05  # measured: 0.12 (VAE), 0.07 (DRAW); q of a random p has little to find


def test_dreg_without_freezing_p_is_a_one_line_error():
    with pytest.raises(PixloomError, match="freeze_generative"):
        DRAW(DRAWConfig(**TINY, steps=2, latent_size=2, iw_train_samples=3, dreg=True))


# -- attention ------------------------------------------------------------------------------------
def test_filterbank_rows_sum_to_one_and_centres_follow_the_paper():
    n, h, w = 5, 40, 40
    gx, gy = torch.tensor([20.0, 11.5]), torch.tensor([15.0, 30.25])
    delta, sigma2 = torch.tensor([3.0, 2.0]), torch.tensor([1.0, 1.5])  # sigma >= 1: discrete mean = centre
    fx, fy = attention.gaussian_filterbank(gx, gy, sigma2.log(), delta.log(), n, h, w)
    assert fx.shape == (2, n, w) and fy.shape == (2, n, h)
    torch.testing.assert_close(fx.sum(-1), torch.ones(2, n))
    torch.testing.assert_close(fy.sum(-1), torch.ones(2, n))
    i = torch.arange(1, n + 1).float()
    expected_x = gx[:, None] + (i - n / 2 - 0.5) * delta[:, None]  # eq. 19
    expected_y = gy[:, None] + (i - n / 2 - 0.5) * delta[:, None]  # eq. 20
    torch.testing.assert_close(fx @ torch.arange(w).float(), expected_x, atol=1e-4, rtol=0)
    torch.testing.assert_close(fy @ torch.arange(h).float(), expected_y, atol=1e-4, rtol=0)
    torch.testing.assert_close(expected_x[:, n // 2], gx)  # odd N: the middle filter sits at gX


def test_attention_params_centre_and_stride():
    gx, gy, _, log_delta, _ = attention.attention_params(torch.zeros(1, 5), n=5, height=20, width=28)
    assert float(gx) == pytest.approx(13.5) and float(gy) == pytest.approx(9.5)  # image centres
    assert float(log_delta.exp()) == pytest.approx(27 / 4)  # (max(A, B) - 1) / (N - 1): grid spans the image


def test_read_responds_at_the_filter_over_a_bright_pixel_and_write_is_its_adjoint():
    h, w, n = 16, 20, 3
    image = torch.zeros(1, 1, h, w)
    image[0, 0, 6, 9] = 1.0
    fx, fy = attention.gaussian_filterbank(torch.tensor([9.0]), torch.tensor([6.0]), torch.tensor([0.0]),
                                           torch.tensor([3.0]).log(), n, h, w)
    glimpse = attention.read(image, fx, fy, torch.zeros(1))  # (1, 1, N, N)
    assert glimpse.shape == (1, 1, n, n)
    assert divmod(int(glimpse.argmax()), n) == (1, 1)
    gamma = torch.tensor([0.7]).log()
    assert float(attention.read(image, fx, fy, gamma)[0, 0, 1, 1]) == pytest.approx(0.7 * float(glimpse[0, 0, 1, 1]))
    # <read(x), p> == <x, write(p)> with gamma = 1: write paints through the transposed filters
    x, patch = torch.rand(1, 1, h, w), torch.rand(1, 1, n, n)
    lhs = (attention.read(x, fx, fy, torch.zeros(1)) * patch).sum()
    rhs = (x * attention.write(patch, fx, fy, torch.zeros(1))).sum()
    torch.testing.assert_close(lhs, rhs)


# -- training, generation, saving ------------------------------------------------------------------
@pytest.mark.parametrize("key", list(MODELS))
def test_short_training_lowers_the_loss(key):
    model = _make(key)
    batch = {"image": _images(model).images}

    def eval_loss():
        model.eval()
        torch.manual_seed(1)
        with torch.no_grad():
            return float(model.loss(batch)["loss"])

    before = eval_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(30):
        optimizer.zero_grad()
        out = model.loss(batch)
        assert set(out) >= ({"loss", "recon_error"} if key.startswith("seq-ae") else {"loss", "elbo_nats"})
        out["loss"].backward()
        optimizer.step()
    assert eval_loss() < before - 0.05


@pytest.mark.parametrize("key", list(MODELS))
def test_sample_reconstruct_interpolate_shapes_dtypes_and_ranges(key):
    model = _make(key).eval()
    data = _images(model, n=8)
    if isinstance(model, SeqAutoencoder):
        with pytest.raises(PixloomError, match="fit_latent_density"):
            model.sample(2)
        model.fit_latent_density(data)
    g = torch.Generator().manual_seed(0)
    samples = model.sample(5, generator=g)
    assert samples.shape == (5, 1, 6, 6) and samples.dtype == torch.uint8
    assert int(samples.max()) < model.config.levels
    assert torch.equal(samples, model.sample(5, generator=torch.Generator().manual_seed(0)))
    recon = model.reconstruct(data.images)
    strip = model.interpolate(data.images[0], data.images[1], steps=4)
    for floats, shape in ((recon, (8, 1, 6, 6)), (strip, (4, 1, 6, 6))):
        assert floats.shape == shape and floats.dtype == torch.float32
        assert float(floats.min()) >= 0.0 and float(floats.max()) <= 1.0
    torch.testing.assert_close(strip[0], model.reconstruct(data.images[:1])[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(strip[-1], model.reconstruct(data.images[1:2])[0], atol=1e-5, rtol=0)
    if isinstance(model, DRAW):
        canvases = model.canvas_steps(3, generator=g)
        assert canvases.shape == (3, 3, 1, 6, 6) and 0 <= float(canvases.min()) <= float(canvases.max()) <= 1


@pytest.mark.parametrize("key", list(MODELS))
def test_save_load_round_trip(key, tmp_path):
    model = _make(key).eval()
    data = _images(model, n=8)
    if isinstance(model, SeqAutoencoder):
        model.fit_latent_density(data)
    model.save_pretrained(tmp_path / "m")
    loaded = pixloom.from_pretrained(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    for name, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name
    torch.testing.assert_close(loaded.reconstruct(data.images), model.reconstruct(data.images))
    a = model.sample(3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, loaded.sample(3, generator=torch.Generator().manual_seed(2)))


def test_gaussian_mixture_recovers_two_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-4.0, 2.0, 0.0], [3.0, -1.0, 5.0]])
    points = torch.cat([centres[0] + 0.5 * torch.randn(300, 3, generator=g),
                        centres[1] + 1.0 * torch.randn(100, 3, generator=g)])
    weights, means, variances, _ = fit_diagonal_gmm(points, components=2)
    order = means[:, 0].argsort()
    torch.testing.assert_close(means[order], centres, atol=0.25, rtol=0)
    torch.testing.assert_close(weights[order], torch.tensor([0.75, 0.25]), atol=0.02, rtol=0)
    torch.testing.assert_close(variances[order].sqrt().mean(1), torch.tensor([0.5, 1.0]), atol=0.15, rtol=0)
    again = fit_diagonal_gmm(points, components=2)
    assert torch.equal(again[1], means)  # deterministic
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(weights),
        torch.distributions.Independent(torch.distributions.Normal(means, variances.sqrt()), 1))
    ours = torch.logsumexp(diagonal_gmm_log_probs(points, weights, means, variances), dim=1)
    torch.testing.assert_close(ours, mixture.log_prob(points), atol=1e-4, rtol=1e-5)


def test_kl_warmup_counts_training_steps_in_a_saved_buffer(tmp_path):
    torch.manual_seed(0)
    model = RecurrentVAE(RecurrentVAEConfig(**TINY, latent_size=4, kl_warmup_steps=4))
    batch = {"image": tiny_binary_dataset(n=8).images}
    weights = [float(model.loss(batch)["kl_weight"]) for _ in range(3)]
    assert weights == [0.0, 0.25, 0.5] and int(model.train_steps) == 3
    model.eval()
    with torch.no_grad():
        assert float(model.loss(batch)["kl_weight"]) == 1.0  # validation scores the true ELBO
    assert int(model.train_steps) == 3
    model.save_pretrained(tmp_path / "m")
    resumed = RecurrentVAE.from_pretrained(tmp_path / "m").train()
    assert float(resumed.loss(batch)["kl_weight"]) == 0.75


def test_one_line_errors():
    with pytest.raises(PixloomError, match="levels 2") as info:
        RecurrentVAE(RecurrentVAEConfig(levels=256))
    assert "\n" not in str(info.value)
    with pytest.raises(PixloomError, match="levels 2"):
        DRAW(DRAWConfig(levels=256))
    from pixloom.models.capabilities import Autoencoder, Likelihood

    model = _make("seq-ae")  # an autoencoder without a likelihood: it does not declare one
    assert isinstance(model, Autoencoder) and not isinstance(model, Likelihood)
    with pytest.raises(PixloomError, match="no likelihood"):
        pixloom.evaluate(model, "sample-binarized", limit=4, iw_samples=5, progress=False)
    with pytest.raises(PixloomError, match="at least 1"):
        _make("rvae").nll(torch.zeros(1, 1, 6, 6, dtype=torch.uint8), iw_samples=0)
    for make, config in ((DRAW, DRAWConfig), (RecurrentVAE, RecurrentVAEConfig)):
        with pytest.raises(PixloomError, match="iw_train_samples must be at least 1, got 0"):
            make(config(**TINY, iw_train_samples=0))


# -- command line -------------------------------------------------------------------------------
SMALL = {
    "seq-autoencoder": ["hidden_size=16", "latent_size=4", "mixture_components=2"],
    "recurrent-vae": ["hidden_size=16", "latent_size=4"],
    "draw": ["hidden_size=16", "latent_size=4", "steps=4"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    torch.set_num_threads(1)
    for name, sets in SMALL.items():
        argv = ["train", name, "--data", "sample-binarized", "--limit-train", "64", "--limit-valid", "32",
                "--epochs", "1", "--batch-size", "32", "--quiet", "--out", str(root / name)]
        for pair in sets:
            argv += ["--set", pair]
        assert main(argv) == 0
    return root


def test_cli_train_fits_the_latent_density_of_the_autoencoder(runs):
    model = pixloom.from_pretrained(runs / "seq-autoencoder")
    assert bool(model.gmm_fitted) and not torch.equal(model.gmm_means, torch.zeros_like(model.gmm_means))


@pytest.mark.parametrize("name", ["recurrent-vae", "draw"])
def test_cli_eval_with_iw_samples(runs, name, capsys):
    argv = ["eval", str(runs / name), "--data", "sample-binarized", "--limit", "16", "--iw-samples", "3", "--quiet"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_images"] == 16 and result["nll_nats"] <= -result["elbo_nats"]


def test_cli_dreg_fine_tune_trains_only_the_inference_network(runs, tmp_path, capsys):
    """``--init RUN --set freeze_generative=true --set dreg=true``: the saved model keeps p(x, z)
    bit for bit and has a new q(z | x); the start line says how many parameters train."""
    out = tmp_path / "dreg"
    assert main(["train", "draw", "--data", "sample-binarized", "--limit-train", "32", "--limit-valid", "16",
                 "--init", str(runs / "draw"), "--set", "iw_train_samples=3", "--set", "freeze_generative=true",
                 "--set", "dreg=true", "--epochs", "1", "--batch-size", "8", "--lr", "1e-2", "--quiet",
                 "--out", str(out)]) == 0
    assert "of them trained" in capsys.readouterr().err
    start, tuned = pixloom.from_pretrained(runs / "draw"), pixloom.from_pretrained(out)
    assert tuned.config.dreg and tuned.config.freeze_generative
    for name, p in tuned.state_dict().items():
        inference = name.startswith(DRAW.inference_parameter_prefixes)
        assert torch.equal(p, start.state_dict()[name]) != inference or name == "train_steps", name


def test_cli_eval_seed_makes_the_iwae_estimate_reproducible(runs, capsys):
    def estimate(*extra):
        assert main(["eval", str(runs / "draw"), "--data", "sample-binarized", "--limit", "8", "--iw-samples", "2",
                     "--quiet", *extra]) == 0
        result = json.loads(capsys.readouterr().out)
        return result["nll_nats"], result["elbo_nats"], result["seed"]

    first, again, other = estimate(), estimate("--seed", "0"), estimate("--seed", "1")
    assert first == again and first[2] == 0
    assert other[2] == 1 and other[:2] != first[:2]  # the figure does depend on the draws


def test_cli_eval_refuses_models_without_iw_samples_or_likelihood(runs, tmp_path, capsys):
    RowLSTM(RowLSTMConfig(hidden_size=8, num_layers=1)).save_pretrained(tmp_path / "row")
    assert main(["eval", str(tmp_path / "row"), "--data", "sample-binarized", "--limit", "4",
                 "--iw-samples", "5", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--iw-samples" in err and "\n" not in err
    assert main(["eval", str(runs / "seq-autoencoder"), "--data", "sample-binarized", "--limit", "4",
                 "--iw-samples", "5", "--quiet"]) == 2
    assert "no likelihood" in capsys.readouterr().err


def test_cli_eval_of_the_autoencoder_reports_reconstruction_error(runs, capsys):
    assert main(["eval", str(runs / "seq-autoencoder"), "--data", "sample-binarized", "--split", "test",
                 "--limit", "8", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_images"] == 8 and 0 < result["recon_error"] < 1 and result["loss"] > 0


@pytest.mark.parametrize("name", list(SMALL))
def test_cli_reconstruct_and_interpolate(runs, name, tmp_path):
    assert main(["reconstruct", str(runs / name), "--data", "sample-binarized", "-n", "5",
                 "--out", str(tmp_path / "r.png")]) == 0
    with Image.open(tmp_path / "r.png") as picture:
        assert picture.size == (3 * (5 * 30 + 2), 3 * (2 * 30 + 2))  # 2 rows x 5 images of 28 + padding
    assert main(["interpolate", str(runs / name), "--data", "sample-binarized", "--steps", "4",
                 "--out", str(tmp_path / "i.png")]) == 0
    with Image.open(tmp_path / "i.png") as picture:
        assert picture.size == (3 * (6 * 30 + 2), 3 * 32)  # image | 4 steps | image


def test_cli_sample_steps_out_writes_gif_and_strip(runs, tmp_path, capsys):
    gif = tmp_path / "canvas.gif"
    assert main(["sample", str(runs / "draw"), "-n", "4", "--seed", "0", "--steps-out", str(gif)]) == 0
    with Image.open(gif) as picture:
        assert picture.n_frames == 4  # T
    assert (tmp_path / "canvas.png").is_file()
    assert main(["sample", str(runs / "recurrent-vae"), "--steps-out", str(gif)]) == 2
    assert main(["sample", str(runs / "draw")]) == 2
    assert "--out" in capsys.readouterr().err
