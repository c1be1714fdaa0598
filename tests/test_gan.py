"""GANs, the sample-quality metrics and the comparison report (tiny models, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import pixloom
from pixloom.cli import main
from pixloom.metrics.sample_quality import (FeatureNetwork, class_shares, coverage_figures, features_of,
                                            frechet_distance, precision_recall)
from pixloom.models.gan.mlp_gan import MLPGAN, MLPGANConfig
from pixloom.models.gan.recurrent_gan import RecurrentGAN, RecurrentGANConfig

TINY_GAN = ["--set", "hidden_size=16", "--set", "num_layers=1"]


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """A small classifier of 28x28 digits, trained for a few steps (the mechanics, not the quality)."""
    path = tmp_path_factory.mktemp("cls") / "cls"
    assert main(["train", "cnn-classifier", "--data", "sample", "--set", "width_factor=4", "--set", "feature_size=16",
                 "--limit-train", "512", "--limit-valid", "128", "--epochs", "1", "--out", path, "--quiet"]) == 0
    return path


# -- metrics ---------------------------------------------------------------------------------------------
def test_precision_recall_match_the_reference_implementation():
    prdc = pytest.importorskip("prdc")
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 8)).astype(np.float32)
    for shift in (0.0, 0.7, 2.0):
        fake = (rng.normal(size=(250, 8)) * rng.uniform(0.5, 1.5) + shift).astype(np.float32)
        ours = precision_recall(torch.from_numpy(real), torch.from_numpy(fake), k=5)
        reference = prdc.compute_prdc(real, fake, nearest_k=5)
        assert ours["precision"] == pytest.approx(reference["precision"], abs=1e-12)
        assert ours["recall"] == pytest.approx(reference["recall"], abs=1e-12)


def test_the_feature_network_stays_in_eval_mode_and_the_distances_behave(classifier_dir):
    classifier = pixloom.from_pretrained(classifier_dir)
    network = FeatureNetwork(classifier)
    network.train()
    assert not classifier.training  # torchmetrics calls .train(); batch norm must not switch to batch statistics
    images = pixloom.load_dataset("sample", "test").images[:400].float() / 255
    first = features_of(network, images)
    assert torch.equal(first, features_of(network, images))
    same = frechet_distance(network, images[:200], images[200:400])
    shifted = frechet_distance(network, images[:200], torch.roll(images[200:400], 6, dims=3))
    assert 0 <= same < shifted
    shares = class_shares(classifier, images, 10)
    figures = coverage_figures(shares)
    assert abs(sum(figures["class_shares"]) - 1) < 1e-3 and figures["max_class_share"] >= 0.1
    one_class = coverage_figures(torch.tensor([1.0] + [0.0] * 9))
    assert one_class["class_entropy"] == 0 and one_class["max_class_share"] == 1


# -- GANs --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda **kw: MLPGAN(MLPGANConfig(hidden_size=16, **kw)),
    lambda **kw: RecurrentGAN(RecurrentGANConfig(hidden_size=16, num_layers=1, discriminator="lstm",
                                                 discriminator_hidden=8, **kw)),
    lambda **kw: RecurrentGAN(RecurrentGANConfig(hidden_size=16, num_layers=1, discriminator="cnn",
                                                 discriminator_hidden=8, **kw)),
])
@pytest.mark.parametrize("loss", ["non-saturating", "wgan-gp"])
def test_gan_losses_and_conditional_sampling(make, loss):
    torch.manual_seed(0)
    model = make(loss=loss, num_classes=10)
    batch = {"image": (torch.rand(6, 1, 28, 28) * 255).to(torch.uint8), "label": torch.arange(6)}
    d = model.discriminator_loss(batch)
    d["d_loss"].backward()
    assert all(p.grad is None for p in model.generator_parameters())  # the D step leaves G alone
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.discriminator_parameters())
    model.zero_grad()
    model.generator_loss(batch)["g_loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.generator_parameters())
    model.eval()
    g = torch.Generator().manual_seed(3)
    images = model.sample(4, label=7, generator=g)
    assert images.shape == (4, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(images, model.sample(4, label=7, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(pixloom.ArgumentError, match="label"):
        model.sample(2, label=10)


def test_gan_training_resumes_exactly_and_monitors_classes(classifier_dir, tmp_path, capsys):
    common = ["--data", "sample", "--conditional", *TINY_GAN, "--set", "discriminator_hidden=8", "--set",
              f"monitor={classifier_dir}", "--set", "collapse_share=0.05", "--limit-train", "256", "--limit-valid",
              "64", "--batch-size", "32", "--epochs", "2", "--seed", "3", "--warmup-steps", "2"]
    assert main(["train", "lstm-gan", *common, "--out", tmp_path / "whole", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "mode collapse?" in err  # every class share passes 5%
    assert main(["train", "lstm-gan", *common, "--max-steps", "11", "--out", tmp_path / "split", "--quiet"]) == 0
    assert main(["train", "lstm-gan", "--out", tmp_path / "split", "--resume", "--quiet"]) == 0
    a, b = (pixloom.from_pretrained(tmp_path / r / "checkpoints" / "ckpt-000000016") for r in ("whole", "split"))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with open(tmp_path / "whole" / "metrics.csv") as handle:
        header = handle.readline()
    assert "valid_fd" in header and "valid_max_class_share" in header and "valid_d_loss" in header
    state = json.loads(next((tmp_path / "whole" / "checkpoints").glob("ckpt-*/trainer_state.json")).read_text())
    assert set(state["optimizers"]) == {"generator", "discriminator"}


# -- the comparison ------------------------------------------------------------------------------------------
def test_compare_writes_a_table_and_refuses_what_it_cannot_compare(classifier_dir, tmp_path, capsys):
    assert main(["train", "row-lstm", "--data", "sample-binarized", "--set", "hidden_size=8", "--set", "num_layers=1",
                 "--limit-train", "64", "--limit-valid", "16", "--epochs", "1", "--out", tmp_path / "row",
                 "--quiet"]) == 0
    MLPGAN(MLPGANConfig(hidden_size=8, monitor="")).save_pretrained(tmp_path / "gan")
    capsys.readouterr()
    report = tmp_path / "report.md"
    assert main(["compare", tmp_path / "row", tmp_path / "gan", "--data", "sample-binarized", "-n", "60",
                 "--seeds", "0", "1", "--classifier", classifier_dir, "--nll-limit", "20", "--out", report,
                 "--quiet"]) == 0
    text = report.read_text()
    assert "| row-lstm |" in text and "| mlp-gan |" in text and "FD" in text and " ± " in text
    floor = [line for line in text.splitlines() if "(the floor)" in line]
    assert len(floor) == 1 and "real train images" in floor[0]  # real images against real images
    assert "data:image/png;base64," in report.with_suffix(".html").read_text()
    capsys.readouterr()
    from test_captioning import tiny_sat

    tiny_sat().save_pretrained(tmp_path / "captioner")
    small = tmp_path / "small"
    MLPGAN(MLPGANConfig(height=6, width=6, hidden_size=8, monitor="")).save_pretrained(small)
    for argv, fragment in (
            ([tmp_path / "captioner", "--data", "sample-binarized"], "does not generate images"),
            ([tmp_path / "missing", "--data", "sample-binarized"], "no run directory"),
            ([small, "--data", "sample-binarized"], "images"),
            ([tmp_path / "row", "--data", "flickr8k"], "captioned photos")):
        out = tmp_path / "refused.md"
        code = main(["compare", *argv, "--classifier", classifier_dir, "-n", "20", "--out", out])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and fragment in err, err
        assert not out.exists()
    assert main(["compare", "--out", tmp_path / "x.md"]) == 2  # no run at all


def test_eval_of_a_generator_adds_its_sample_figures(classifier_dir, tmp_path, capsys):
    MLPGAN(MLPGANConfig(hidden_size=8, monitor="")).save_pretrained(tmp_path / "gan")
    assert main(["eval", tmp_path / "gan", "--data", "sample", "--sample-metrics", "50", "--classifier",
                 classifier_dir, "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["samples"]["n_samples"] == 50 and np.isfinite(result["samples"]["fd"])
    assert main(["eval", tmp_path / "gan", "--data", "sample", "--sample-metrics", "0"]) == 2
    assert "no likelihood" in capsys.readouterr().err


def test_tstr_reads_labels_from_the_samples_and_runs_for_conditional_generators(classifier_dir):
    from pixloom.metrics.sample_quality import tstr_accuracy
    from pixloom.models.capabilities import Classifier
    from pixloom.tasks.sample_quality import _tstr_classifier

    reference = pixloom.from_pretrained(classifier_dir)
    assert isinstance(reference, Classifier)
    train, test = pixloom.load_dataset("sample", "train"), pixloom.load_dataset("sample", "test")
    real, labels = train.images[:1500].float() / 255, train.labels[:1500]
    test_images, test_labels = test.images.float() / 255, test.labels
    good = tstr_accuracy(_tstr_classifier(reference), real, labels, test_images, test_labels, min_steps=200)
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    bad = tstr_accuracy(_tstr_classifier(reference), real, shuffled, test_images, test_labels, min_steps=200)
    assert good > 0.8 and bad < 0.3, (good, bad)  # "samples" that are real digits with their labels, or not
    conditional = MLPGAN(MLPGANConfig(hidden_size=8, num_classes=10, monitor=""))
    figures = pixloom.sample_metrics(conditional, data="sample", n=60, classifier=classifier_dir)
    assert 0 <= figures["tstr_accuracy"] <= 1  # an untrained conditional generator: near chance
    assert 0 <= figures["label_accuracy"] <= 1


def test_label_accuracy_is_the_share_of_samples_read_as_their_label():
    from pixloom.metrics.sample_quality import label_accuracy, predicted_classes

    classifier = pixloom.from_pretrained("mnist-classifier")
    test = pixloom.load_dataset("sample", "test")
    images, labels = test.images[:500].float() / 255, test.labels[:500]
    predicted = predicted_classes(classifier, images)
    right = label_accuracy(predicted, labels)
    assert right == pytest.approx(float((classifier.classify(images).argmax(1) == labels).double().mean()))
    assert right > 0.8, right  # real digits "drawn for" their own labels
    assert label_accuracy(predicted, (labels + 1) % 10) < 0.2  # every label wrong by one
