"""The `pixloom` command: the train/sample/complete/eval contract and one-line errors (exit 2)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pixloom.cli import main


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "row"
    code = main(["train", "row-lstm", "--data", "sample-binarized", "--limit-train", "128", "--limit-valid", "32",
                 "--epochs", "1", "--batch-size", "32", "--set", "hidden_size=16", "--set", "num_layers=1",
                 "--out", str(run), "--quiet"])
    assert code == 0
    return run


def test_models_lists_every_registered_model(capsys):
    from pixloom.models import MODELS

    code, out, _ = run_cli(["models"], capsys)
    assert code == 0
    for name in MODELS:
        assert name in out


def test_train_writes_a_loadable_run_and_eval_prints_json(trained_run, capsys):
    for name in ("config.json", "model.safetensors", "loss.png", "metrics.csv"):
        assert (trained_run / name).is_file()
    code, out, _ = run_cli(["eval", str(trained_run), "--data", "sample-binarized", "--split", "test",
                            "--limit", "50", "--quiet"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["n_images"] == 50
    assert 0 < result["nll_nats"] < 784 * np.log(2) * 1.5
    assert abs(result["bits_per_dim"] - result["nll_nats"] / (784 * np.log(2))) < 1e-9


def test_eval_reports_the_standard_error_over_images(trained_run, capsys):
    from pixloom import from_pretrained
    from pixloom.data import load_dataset

    code, out, _ = run_cli(["eval", str(trained_run), "--data", "sample-binarized", "--split", "test",
                            "--limit", "50", "--batch-size", "16", "--quiet"], capsys)  # 4 batches, the last short
    assert code == 0
    result = json.loads(out)
    images = load_dataset("sample-binarized", "test").images[:50]
    with torch.no_grad():
        per_image = from_pretrained(str(trained_run)).nll(images)["nll_nats"].double()
    assert result["nll_nats"] == pytest.approx(float(per_image.mean()), abs=1e-4)
    assert result["nll_nats_stderr"] == pytest.approx(float(per_image.std() / 50 ** 0.5), rel=1e-4)
    assert result["nll_nats_stderr"] > 0


def test_sample_and_complete_write_pictures(trained_run, tmp_path, capsys):
    grid = tmp_path / "grid.png"
    assert main(["sample", str(trained_run), "-n", "6", "--out", str(grid), "--seed", "1"]) == 0
    assert Image.open(grid).size[0] > 28
    digit = tmp_path / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).save(digit)
    out = tmp_path / "completions.png"
    assert main(["complete", str(trained_run), "--image", str(digit), "--keep-rows", "10", "-n", "3",
                 "--out", str(out)]) == 0
    assert out.is_file()


def test_resume_continues_a_run(trained_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "resumed"
    shutil.copytree(trained_run, run)
    assert main(["train", "row-lstm", "--data", "sample-binarized", "--limit-train", "128", "--limit-valid", "32",
                 "--epochs", "2", "--batch-size", "32", "--out", str(run), "--resume", "--quiet"]) == 0
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + epoch 1 (copied) + epoch 2 (resumed)


def test_init_starts_a_new_run_from_the_weights_of_a_saved_model(trained_run, tmp_path):
    from safetensors.torch import load_file

    run = tmp_path / "finetuned"
    assert main(["train", "row-lstm", "--data", "sample-binarized", "--limit-train", "16", "--limit-valid", "32",
                 "--init", str(trained_run), "--epochs", "1", "--batch-size", "16", "--lr", "1e-12",
                 "--out", str(run), "--quiet"]) == 0
    start, after = load_file(trained_run / "model.safetensors"), load_file(run / "model.safetensors")
    assert set(start) == set(after)
    assert all(torch.allclose(start[k], after[k], rtol=0, atol=1e-9) for k in start)  # one step at lr ~ 0
    fresh = tmp_path / "fresh"
    assert main(["train", "row-lstm", "--data", "sample-binarized", "--limit-train", "16", "--limit-valid", "32",
                 "--set", "hidden_size=16", "--set", "num_layers=1", "--epochs", "1", "--batch-size", "16",
                 "--lr", "1e-12", "--out", str(fresh), "--quiet"]) == 0
    new = load_file(fresh / "model.safetensors")
    assert max(float((start[k] - new[k]).abs().max()) for k in start) > 1e-5  # the saved weights, not a new model


BAD_INPUTS = [
    (["train", "no-such-model", "--data", "sample", "--out", "X"], "unknown model 'no-such-model'"),
    (["train", "row-lstm", "--data", "imagenet", "--out", "X"], "unknown data set"),
    (["train", "row-lstm", "--data", "sample", "--set", "bogus=1", "--out", "X"], "unknown option 'bogus'"),
    (["train", "row-lstm", "--data", "sample", "--set", "hidden_size=big", "--out", "X"], "expects int"),
    (["train", "row-lstm", "--data", "mnist", "--data-dir", "{tmp}/empty", "--out", "X"], "--data-dir"),
    (["sample", "{tmp}/nothing-here", "--out", "{tmp}/g.png"], "no run directory or shipped model"),
    (["eval", "{run}", "--data", "sample", "--split", "test"], "2-level pixels"),
    (["complete", "{run}", "--image", "{tmp}/missing.png", "--keep-rows", "3", "--out", "{tmp}/c.png"], "image not found"),
    (["complete", "{run}", "--image", "{tmp}/notimage.png", "--keep-rows", "3", "--out", "{tmp}/c.png"], "cannot read image"),
    (["complete", "{run}", "--image", "{tmp}/big.png", "--keep-rows", "3", "--out", "{tmp}/c.png"], "28x28"),
    (["complete", "{run}", "--image", "{tmp}/digit.png", "--keep-rows", "40", "--out", "{tmp}/c.png"], "keep-rows"),
    (["sample", "{corrupt}", "--out", "{tmp}/g.png"], "corrupt"),
    (["sample", "{other}", "--out", "{tmp}/g.png"], "do not match pixel-lstm"),
    (["train", "row-lstm", "--data", "sample", "--out", "{run}"], "already holds a run"),
    (["train", "row-lstm", "--data", "sample", "--weight-decay", "-0.1", "--out", "{tmp}/wd"], "argument --weight-decay: must be at least 0"),
    (["train", "row-lstm", "--data", "sample", "--optimizer", "sgd", "--out", "{tmp}/opt"], "argument --optimizer: invalid choice: 'sgd'"),
    (["ensemble", "{run}", "{run}", "--out", "{tmp}/ens"], "only trained captioners"),
    (["eval", "{run}", "--data", "sample-binarized", "--seed", "18446744073709551621"], "argument --seed: must be from 0"),
    (["sample", "{run}", "--seed", "-1", "--out", "{tmp}/g.png"], "argument --seed: must be from 0"),
    (["train", "row-lstm", "--data", "sample", "--epochs", "0", "--out", "{tmp}/e0"], "argument --epochs: must be greater than 0"),
    (["train", "row-lstm", "--data", "sample", "--epochs", "inf", "--out", "{tmp}/einf"], "argument --epochs: expected a finite number"),
    (["train", "row-lstm", "--data", "sample", "--ema", "1.5", "--out", "{tmp}/ema"], "argument --ema: must be in [0, 1)"),
    (["train", "row-lstm", "--data", "sample", "--init", "{run}", "--out", "{tmp}/i"], "trained with levels = 2"),
    (["train", "pixel-lstm", "--data", "sample-binarized", "--init", "{run}", "--out", "{tmp}/i"], "holds a row-lstm model, not a pixel-lstm model"),
    (["train", "row-lstm", "--data", "sample-binarized", "--init", "{run}", "--set", "hidden_size=8", "--out", "{tmp}/i"],
     "do not fit the model options"),
    (["train", "row-lstm", "--data", "sample-binarized", "--init", "{run}", "--resume", "--out", "{run}"], "give only one"),
]


@pytest.mark.parametrize("argv,message", BAD_INPUTS, ids=[" ".join(a[:2]) + ":" + m for a, m in BAD_INPUTS])
def test_bad_input_gives_one_line_and_exit_2(argv, message, trained_run, tmp_path, capsys, monkeypatch):
    import shutil
    import urllib.request
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notimage.png").write_text("this is not a PNG")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "big.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28, 3)).astype(np.uint8)).save(tmp_path / "colour.png")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "digit.png")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(trained_run, corrupt, ignore=shutil.ignore_patterns("checkpoints"))
    (corrupt / "model.safetensors").write_bytes(b"\x00garbage")
    other = tmp_path / "other"
    shutil.copytree(trained_run, other, ignore=shutil.ignore_patterns("checkpoints"))
    meta = json.loads((other / "config.json").read_text())
    meta["model"] = "pixel-lstm"
    (other / "config.json").write_text(json.dumps(meta))
    argv = [a.format(tmp=tmp_path, run=trained_run, corrupt=corrupt, other=other) for a in argv]
    code, out, err = run_cli(argv, capsys)
    assert code == 2, err
    errors = [line for line in err.strip().splitlines() if line.startswith("pixloom") and ": error: " in line]
    others = [line for line in err.strip().splitlines() if line not in errors]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    assert all(line.startswith("pixloom: downloading ") for line in others), err  # e.g. no "training ..." first
    assert message in errors[0]
    assert "Traceback" not in err


def test_loading_a_checkpoint_of_another_model_is_refused(trained_run):
    from pixloom.errors import CheckpointError
    from pixloom.models.autoregressive.pixel_lstm import PixelLSTM

    with pytest.raises(CheckpointError, match="holds a 'row-lstm' model, not a 'pixel-lstm' model"):
        PixelLSTM.from_pretrained(trained_run)


def test_console_script_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pixloom.cli", "sample", str(tmp_path / "none"), "--out", "x.png"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
