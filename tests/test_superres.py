"""Super-resolution: the metrics against scikit-image, the resizer, the models (tiling changes nothing,
an untrained model is bicubic, the digit model's likelihood is normalised), training, eval, upscale."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from PIL import Image

import pixloom
from pixloom.cli import main
from pixloom.data.resize import downscale, upscale_bicubic
from pixloom.metrics.image_quality import crop_to_scale, psnr, rgb_to_y, shave, sr_scores, ssim
from pixloom.models.superres.recursive import PlainSR, PlainSRConfig, RecurrentSR, RecurrentSRConfig
from pixloom.models.superres.row_lstm_sr import RowLSTMSR, RowLSTMSRConfig


def photo(seed=0, size=(40, 52)):
    """A smooth colour picture with some edges (random noise is not a fair picture to upscale)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    base = np.stack([np.sin(xx / (5 + 3 * k) + rng.uniform(0, 6)) + np.cos(yy / (4 + k)) for k in range(3)], -1)
    base[size[0] // 3:, size[1] // 2:] += 1.0
    return np.clip((base - base.min()) / np.ptp(base) * 255, 0, 255).astype(np.uint8)


# -- metrics --------------------------------------------------------------------------------------------
def test_psnr_and_ssim_match_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(1)
    for _ in range(5):
        a = rng.uniform(16, 235, (37, 45))
        b = np.clip(a + rng.normal(0, rng.uniform(1, 20), a.shape), 0, 255)
        assert psnr(a, b) == pytest.approx(metrics.peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)
        reference = metrics.structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                                  use_sample_covariance=False)
        assert ssim(a, b) == pytest.approx(reference, abs=1e-6)


def test_luma_shave_and_crop_follow_the_convention():
    assert rgb_to_y(np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)).tolist() == [[16.0, 235.0]]
    assert crop_to_scale(np.zeros((31, 29)), 4).shape == (28, 28)
    assert shave(np.zeros((10, 12)), 2).shape == (6, 8)
    picture = photo()
    noisy = np.clip(picture.astype(int) + 3, 0, 255).astype(np.uint8)
    scores = sr_scores(noisy, picture, 2)
    assert 35 < scores["psnr_y"] < 45 and 0.9 < scores["ssim_y"] <= 1.0
    assert sr_scores(picture, picture, 2)["psnr_y"] == float("inf")


def test_the_resizer_is_pillows_bicubic():
    picture = photo()[:40, :52]
    tensor = torch.from_numpy(picture).permute(2, 0, 1)[None].contiguous()
    small = downscale(tensor, 4)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(small, np.asarray(Image.fromarray(picture).resize((13, 10), Image.BICUBIC)))
    up = upscale_bicubic(torch.from_numpy(small.astype(np.float32)).permute(2, 0, 1)[None], 4)
    reference = np.asarray(Image.fromarray(small).resize((52, 40), Image.BICUBIC)).astype(np.float32)
    difference = np.abs(up[0].permute(1, 2, 0).numpy() - reference)
    assert difference.max() <= 1.5 and difference.mean() < 0.4  # Pillow's 8-bit path: fixed-point weights


# -- photo models -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda s: RecurrentSR(RecurrentSRConfig(scale=s, features=8, recursions=3)),
                                  lambda s: PlainSR(PlainSRConfig(scale=s, features=8, layers=3))])
def test_untrained_is_bicubic_and_tiling_changes_nothing(make):
    torch.manual_seed(0)
    for scale in (2, 3):
        model = make(scale)
        picture = photo(size=(30, 33))
        out = model.upscale(torch.from_numpy(picture).permute(2, 0, 1))[0]
        bicubic = np.asarray(Image.fromarray(picture).resize((33 * scale, 30 * scale), Image.BICUBIC))
        assert np.abs(out.permute(1, 2, 0).numpy().astype(int) - bicubic).max() <= 2  # zero tail: bicubic
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.1)
        y = np.random.default_rng(0).uniform(16, 235, (37, 41))
        whole = model.upscale_y(y)
        model.tile = 9  # tiles much smaller than the picture, overlapping by the receptive radius
        np.testing.assert_allclose(model.upscale_y(y), whole, atol=1e-3)


def test_upscale_takes_grey_rgba_and_16_bit_pictures(tmp_path):
    model = RecurrentSR(RecurrentSRConfig(scale=2, features=8, recursions=2))
    rgb = photo(size=(20, 24))
    Image.fromarray(rgb).convert("L").save(tmp_path / "grey.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(tmp_path / "deep.png")
    outs = model.upscale([str(tmp_path / n) for n in ("grey.png", "rgba.png", "deep.png")])
    assert [tuple(o.shape) for o in outs] == [(1, 40, 48), (3, 40, 48), (1, 40, 48)]
    with pytest.raises(pixloom.ArgumentError, match="at least 4x4"):
        model.upscale(torch.zeros(3, 3, 8, dtype=torch.uint8))


def test_training_eval_and_upscale_from_the_command_line(tmp_path, capsys):
    photos, truth = tmp_path / "photos", tmp_path / "truth"
    photos.mkdir()
    truth.mkdir()
    for k in range(12):
        Image.fromarray(photo(k, (64, 64))).save(photos / f"p{k:02d}.png")
    for k in range(2):
        Image.fromarray(photo(100 + k, (40, 44))).save(truth / f"t{k}.png")
    run = tmp_path / "run"
    assert main(["train", "recurrent-sr", "--data", f"folder:{photos}", "--set", "features=8", "--set", "recursions=2",
                 "--set", "patch_size=12", "--batch-size", "8", "--epochs", "3", "--lr", "3e-3", "--warmup-steps", "2",
                 "--out", run, "--quiet"]) == 0
    saved = json.loads((run / "train_config.json").read_text())
    assert saved["train_photos"] == 11 and saved["valid_photos"] == 1  # the folder's 90/10 split
    with open(run / "metrics.csv") as handle:
        assert "valid_psnr" in handle.readline()
    capsys.readouterr()
    assert main(["eval", run, "--data", f"folder:{truth}", "--per-image", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_images"] == 2 and len(result["per_image"]) == 2 and result["scale"] == 2
    assert 20 < result["bicubic_psnr_y"] < 60 and np.isfinite(result["psnr_y"])
    assert main(["upscale", run, truth / "t0.png", truth / "t1.png", "--out", tmp_path / "up"]) == 0
    assert Image.open(tmp_path / "up" / "t0.png").size == (88, 80)
    capsys.readouterr()
    for argv, fragment in ((["eval", run, "--data", f"folder:{truth}", "--scale", "4"], "--scale"),
                           (["upscale", run, truth / "t0.png", "--out", tmp_path / "x.png", "--scale", "3"], "--scale"),
                           (["eval", run, "--data", "sample"], "folder"),
                           (["train", "recurrent-sr", "--data", "mnist", "--out", tmp_path / "m"], "photos"),
                           (["train", "recurrent-sr", "--data", f"folder:{photos}", "--set", "scale=5", "--out",
                             tmp_path / "m"], "scale")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and fragment in err, err


# -- digits -------------------------------------------------------------------------------------------------
def test_the_digit_model_is_a_normalised_conditional_distribution():
    torch.manual_seed(0)
    model = RowLSTMSR(RowLSTMSRConfig(height=4, width=2, factor=2, hidden_size=8, num_layers=1))
    every = torch.tensor(list(itertools.product([0, 1], repeat=8)), dtype=torch.uint8).view(-1, 1, 4, 2)
    low = model.downscale(every)
    for y in torch.unique(low.flatten(1), dim=0)[:5]:
        given = y.view(1, 1, 2, 1).expand(len(every), 1, 2, 1)
        total = torch.logsumexp(model.conditional_log_prob(every, given), 0)
        assert float(total) == pytest.approx(0.0, abs=1e-4)  # sums to 1 over all 256 high-resolution images


def test_digit_draws_are_consistent_with_their_input_after_training(tmp_path, capsys):
    run = tmp_path / "digits"
    assert main(["train", "row-lstm-sr", "--data", "sample-binarized", "--set", "hidden_size=64", "--set",
                 "num_layers=1", "--limit-train", "2000", "--limit-valid", "200", "--epochs", "2", "--lr", "3e-3",
                 "--out", run, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", run, "--data", "sample-binarized", "--split", "test", "--limit", "100", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mean_psnr"] > result["sample_psnr"] and result["cond_nll_nats"] < 300  # untrained: 543
    model = pixloom.from_pretrained(run)
    truth = pixloom.load_dataset("sample-binarized", "test").images[:20]
    draws = model.upscale(model.downscale(truth), n=4, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (20, 4, 1, 28, 28)
    again = model.downscale(draws.flatten(0, 1)).view(20, 4, 1, 7, 7)
    error = (again - model.downscale(truth)[:, None]).abs().mean()
    untrained = RowLSTMSR(model.config)
    noise = untrained.upscale(model.downscale(truth), n=4, generator=torch.Generator().manual_seed(0))
    noise_error = (model.downscale(noise.flatten(0, 1)).view(20, 4, 1, 7, 7) - model.downscale(truth)[:, None]).abs()
    assert float(error) < 0.5 * float(noise_error.mean())  # the draws shrink back close to their input
    Image.fromarray((model.downscale(truth)[0, 0].numpy() * 255).astype(np.uint8)).save(tmp_path / "low.png")
    assert main(["upscale", run, tmp_path / "low.png", "-n", "4", "--seed", "0", "--out", tmp_path / "draws.png"]) == 0
    assert Image.open(tmp_path / "draws.png").size[0] > 5 * 28
