"""Reliability: resume keeps the run's settings, the run directory is locked, every bad input is one line
and exit 2 (never a traceback), and no silent wrong result (issue 48's list, each reproduced here)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pixloom
from pixloom.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "hidden_size=8", "--set", "num_layers=1"]


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert "error" in lines[0] and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("rel") / "row"
    assert main(["train", "row-lstm", "--data", "sample-binarized", "--limit-train", "64", "--limit-valid", "16",
                 "--epochs", "1", "--batch-size", "32", *TINY, "--out", str(run), "--quiet"]) == 0
    return run


@pytest.fixture
def digit(tmp_path):
    path = tmp_path / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((28, 28)) > 0.8).astype(np.uint8) * 255).save(path)
    return path


# -- 1. resume takes every setting from the run ---------------------------------------------------------
def test_resume_takes_the_runs_settings_and_matches_an_uninterrupted_run(tmp_path, capsys):
    common = ["--data", "sample", "--epochs", "3", "--seed", "1", "--limit-train", "96", "--limit-valid", "16",
              "--batch-size", "32", "--warmup-steps", "2", *TINY]
    assert main(["train", "row-lstm", *common, "--max-steps", "4", "--out", tmp_path / "c", "--quiet"]) == 0
    # the second command: only the budget given; everything else (the model too) comes from the run
    assert main(["train", "--out", tmp_path / "c", "--resume", "--max-steps", "7", "--quiet"]) == 0
    assert main(["train", "row-lstm", *common, "--max-steps", "7", "--out", tmp_path / "whole", "--quiet"]) == 0
    saved = json.loads((tmp_path / "c" / "train_config.json").read_text())
    assert saved["settings"]["seed"] == 1 and saved["settings"]["limit_train"] == 96
    assert saved["settings"]["epochs"] == 3 and saved["settings"]["options"] == {"hidden_size": 8, "num_layers": 1}
    assert saved["command"].startswith("pixloom train row-lstm --data sample --epochs 3")  # the command that started it
    assert saved["resumed"] == [{"command": f"pixloom train --out {tmp_path / 'c'} --resume --max-steps 7 --quiet",
                                 "overrides": {"max_steps": 7}}]
    a, b = (pixloom.from_pretrained(tmp_path / "c" / "checkpoints" / "ckpt-000000007"),
            pixloom.from_pretrained(tmp_path / "whole" / "checkpoints" / "ckpt-000000007"))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    capsys.readouterr()
    before = (tmp_path / "c" / "train_config.json").read_text()
    for flag, value in (("--lr", "0.5"), ("--seed", "0"), ("--batch-size", "8"), ("--limit-train", "500")):
        code, _, err = run_cli(["train", "row-lstm", "--out", tmp_path / "c", "--resume", flag, value], capsys)
        assert_one_line_error(code, err, flag, "resumed run keeps its settings")
    code, _, err = run_cli(["train", "row-lstm", "--out", tmp_path / "c", "--resume", "--data", "mnist"], capsys)
    assert_one_line_error(code, err, "--data")
    code, _, err = run_cli(["train", "pixel-lstm", "--out", tmp_path / "c", "--resume"], capsys)
    assert_one_line_error(code, err, "'row-lstm' run")
    code, _, err = run_cli(["train", "--out", tmp_path / "c"], capsys)
    assert_one_line_error(code, err, "MODEL is required")
    assert (tmp_path / "c" / "train_config.json").read_text() == before  # nothing written by the refusals


# -- 2. a locked run directory ----------------------------------------------------------------------------
LOCK_HOLDER = """
import sys, time
from pixloom.training.lock import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_run_directory_in_use_is_refused_at_once_and_a_dead_holder_never_blocks(tmp_path, capsys):
    run = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        code, _, err = run_cli(["train", "row-lstm", "--data", "sample-binarized", *TINY, "--max-steps", "1",
                                "--out", run], capsys)
        assert time.monotonic() - started < 30
        assert_one_line_error(code, err, "is in use by process", str(holder.pid))
        assert not (run / "train_config.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    code, _, err = run_cli(["train", "row-lstm", "--data", "sample-binarized", *TINY, "--max-steps", "1",
                            "--limit-train", "32", "--limit-valid", "8", "--out", run, "--quiet"], capsys)
    assert code == 0, err  # the killed holder's lock died with it


def test_two_trainings_into_one_directory_one_is_refused(tmp_path):
    argv = [sys.executable, "-m", "pixloom", "train", "row-lstm", "--data", "sample-binarized", *TINY,
            "--limit-train", "64", "--limit-valid", "16", "--epochs", "200", "--max-minutes", "0.2",
            "--out", str(tmp_path / "same"), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    second = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    results = [p.communicate(timeout=300) + (p.returncode,) for p in (first, second)]
    codes = sorted(r[2] for r in results)
    assert codes == [0, 2], results
    refused = next(r for r in results if r[2] == 2)
    assert "is in use by process" in refused[1] and len(refused[1].strip().splitlines()) == 1


# -- 3. one-line errors instead of tracebacks ----------------------------------------------------------------
def _blocked(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker


@pytest.mark.parametrize("command", ["sample", "complete", "train", "demo", "eval-captions"])
def test_an_output_whose_folder_is_a_file_is_one_line(command, tiny_run, digit, tmp_path, capsys):
    blocker = _blocked(tmp_path)
    argv = {
        "sample": ["sample", tiny_run, "-n", "2", "--out", blocker / "g.png"],
        "complete": ["complete", tiny_run, "--image", digit, "--keep-rows", "5", "--out", blocker / "c.png"],
        "train": ["train", "row-lstm", "--data", "sample-binarized", *TINY, "--out", blocker / "run"],
        "demo": ["demo", "--out", blocker / "demo", "--steps", "1"],
        "eval-captions": ["eval", tiny_run, "--data", "sample-binarized", "--captions-out", blocker / "c.json"],
    }[command]
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(code, err)


def test_attention_map_into_a_blocked_folder_is_refused_before_any_work(tmp_path, capsys):
    from test_captioning import tiny_sat

    model = tiny_sat()
    model.save_pretrained(tmp_path / "sat")
    photo = tmp_path / "p.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(photo)
    code, out, err = run_cli(["caption", tmp_path / "sat", photo, "--attention-map",
                              _blocked(tmp_path) / "att.png"], capsys)
    assert_one_line_error(code, err, "--attention-map")
    assert out == ""  # refused before captioning


def _open_tree(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0,
                    reason="needs root and setpriv to run a command as an unprivileged user")
def test_an_output_folder_without_write_permission_is_one_line(tiny_run, digit):
    base = Path(tempfile.mkdtemp(prefix="pixloom-perm-"))
    try:
        shutil.copytree(tiny_run, base / "run", ignore=shutil.ignore_patterns("checkpoints", ".lock"))
        shutil.copy(digit, base / "digit.png")
        (base / "locked").mkdir()
        _open_tree(base)
        os.chmod(base / "locked", 0o555)
        env = {**os.environ, "HOME": str(base), "MPLCONFIGDIR": str(base / "mpl"), "OMP_NUM_THREADS": "1"}
        user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "pixloom"]
        commands = [
            ["sample", base / "run", "-n", "2", "--out", base / "locked/g.png"],
            ["complete", base / "run", "--image", base / "digit.png", "--keep-rows", "5", "--out", base / "locked/c.png"],
            ["train", "row-lstm", "--data", "sample-binarized", *TINY, "--out", base / "locked/run"],
            ["demo", "--out", base / "locked/demo", "--steps", "1"],
            ["eval", base / "run", "--data", "sample-binarized", "--captions-out", base / "locked/c.json"],
        ]
        for argv in commands:
            done = subprocess.run(user + [str(a) for a in argv], capture_output=True, text=True, env=env, timeout=120)
            assert done.returncode == 2, (argv, done.stderr)
            assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
            assert "permission denied" in done.stderr.lower() or "captions-out" in done.stderr, done.stderr
        assert os.listdir(base / "locked") == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_bad_values_are_one_line(tiny_run, digit, tmp_path, capsys):
    cases = [
        (["train", "row-lstm", "--data", "sample", "--batch-size", "0", "--out", tmp_path / "x"], "--batch-size"),
        (["train", "row-lstm", "--data", "sample", "--batch-size", "-3", "--out", tmp_path / "x"], "--batch-size"),
        (["eval", tiny_run, "--data", "sample-binarized", "--limit", "0"], "--limit"),
        (["eval", tiny_run, "--data", "sample-binarized", "--limit", "-1"], "--limit"),
        (["train", "row-lstm", "--data", "sample", "--set", "hidden_size=-4", "--out", tmp_path / "x"], "hidden_size"),
        (["train", "row-lstm", "--data", "sample", "--lr", "nan", "--out", tmp_path / "x"], "--lr"),
        (["train", "row-lstm", "--data", "sample", "--max-minutes", "-1", "--out", tmp_path / "x"], "--max-minutes"),
        (["sample", tiny_run, "--temperature", "nan", "--out", tmp_path / "g.png"], "--temperature"),
        (["sample", tiny_run, "--temperature", "-1", "--out", tmp_path / "g.png"], "--temperature"),
        (["sample", tiny_run, "-n", "2000", "--out", tmp_path / "g.png"], ".npz"),
        (["sample", tiny_run, "--out", tmp_path / "g.xyz"], "--out"),
    ]
    for argv, fragment in cases:
        code, out, err = run_cli(argv, capsys)
        assert_one_line_error(code, err, fragment)
        assert not (tmp_path / "x").exists() and not (tmp_path / "g.png").exists()


def test_a_config_of_the_wrong_type_is_one_line(tiny_run, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken, ignore=shutil.ignore_patterns("checkpoints", ".lock"))
    meta = json.loads((broken / "config.json").read_text())
    for value in ("abc", -4, 2.5, None, [1], float("nan")):
        meta["config"]["hidden_size"] = value
        (broken / "config.json").write_text(json.dumps(meta))
        code, _, err = run_cli(["sample", broken, "-n", "1", "--out", tmp_path / "g.png"], capsys)
        assert_one_line_error(code, err, "hidden_size")


def test_weights_that_are_not_numbers_are_refused_and_random_finite_ones_work(tiny_run, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    state = load_file(tiny_run / "model.safetensors")
    for name, fill in (("nan", float("nan")), ("inf", float("inf"))):
        target = tmp_path / name
        shutil.copytree(tiny_run, target, ignore=shutil.ignore_patterns("checkpoints", ".lock"))
        bad = {k: v.clone() for k, v in state.items()}
        first = next(iter(bad))
        bad[first].view(-1)[0] = fill
        save_file(bad, target / "model.safetensors")
        for argv in (["sample", target, "-n", "2", "--out", tmp_path / "g.png"],
                     ["eval", target, "--data", "sample-binarized", "--limit", "8", "--quiet"]):
            code, out, err = run_cli(argv, capsys)
            assert_one_line_error(code, err, "NaN or infinite")
            assert "NaN" not in out
    noise = tmp_path / "noise"
    shutil.copytree(tiny_run, noise, ignore=shutil.ignore_patterns("checkpoints", ".lock"))
    g = torch.Generator().manual_seed(0)
    save_file({k: torch.randn(v.shape, generator=g) * 30 for k, v in state.items()}, noise / "model.safetensors")
    code, _, err = run_cli(["sample", noise, "-n", "2", "--out", tmp_path / "noise.png"], capsys)
    assert code == 0, err  # wild but finite weights: a picture of noise, not a crash
    code, out, _ = run_cli(["eval", noise, "--data", "sample-binarized", "--limit", "8", "--quiet"], capsys)
    assert code == 0 and np.isfinite(json.loads(out)["nll_nats"])


def test_a_decompression_bomb_and_a_transparent_picture_are_one_line(tiny_run, tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20_000, 20_000)).save(bomb)  # 400 M pixels in a few kilobytes
    assert bomb.stat().st_size < 200_000
    code, _, err = run_cli(["complete", tiny_run, "--image", bomb, "--keep-rows", "3", "--out", tmp_path / "c.png"],
                           capsys)
    assert_one_line_error(code, err, "pixels")
    clear = tmp_path / "clear.png"
    Image.new("RGBA", (28, 28), (255, 255, 255, 0)).save(clear)
    code, _, err = run_cli(["complete", tiny_run, "--image", clear, "--keep-rows", "3", "--out", tmp_path / "c.png"],
                           capsys)
    assert_one_line_error(code, err, "fully transparent")
    assert not (tmp_path / "c.png").exists()


# -- 4. no silent wrong result ----------------------------------------------------------------------------------
def test_temperature_zero_is_the_most_likely_picture_and_negative_is_refused(tiny_run):
    model = pixloom.from_pretrained(tiny_run)
    greedy = model.sample(3, temperature=0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(greedy, model.sample(3, temperature=0, generator=torch.Generator().manual_seed(2)))
    for bad in (-1, float("nan"), float("inf"), "hot"):
        with pytest.raises(pixloom.ArgumentError, match="temperature"):
            model.sample(2, temperature=bad)


def test_out_with_a_jpeg_name_writes_a_jpeg(tiny_run, tmp_path):
    pixloom.sample(tiny_run, n=4, seed=0, out=tmp_path / "grid.jpg")
    pixloom.sample(tiny_run, n=4, seed=0, out=tmp_path / "grid.png")
    assert (tmp_path / "grid.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_canvas_animation_shows_the_draws_of_the_grid(tmp_path):
    from pixloom.models.latent.draw import DRAW, DRAWConfig

    torch.manual_seed(0)
    model = DRAW(DRAWConfig(height=28, width=28, steps=4, hidden_size=16, latent_size=4))
    model.save_pretrained(tmp_path / "draw")
    images = pixloom.sample(tmp_path / "draw", n=6, temperature=0, seed=5, out=tmp_path / "g.png",
                            steps_out=tmp_path / "c.gif")
    canvases = pixloom.canvas(tmp_path / "draw", n=6, seed=5)
    assert torch.equal(images, (canvases[:, -1] > 0.5).to(torch.uint8))
    assert (tmp_path / "c.gif").is_file() and (tmp_path / "c.png").is_file()


def test_a_loss_that_grows_ends_with_a_warning(tmp_path, capsys):
    from pixloom.models.autoregressive.row_lstm import RowLSTM, RowLSTMConfig
    from pixloom.training.trainer import Trainer, TrainConfig

    from conftest import tiny_binary_dataset

    class Blowing(RowLSTM):
        calls = 0

        def loss(self, batch):
            out = super().loss(batch)
            if self.training:
                Blowing.calls += 1
                return {**out, "loss": out["loss"] * (10.0 ** Blowing.calls)}
            return out

    data = tiny_binary_dataset(n=64)
    model = Blowing(RowLSTMConfig(height=6, width=6, hidden_size=8, num_layers=1))
    trainer = Trainer(model, data, data, TrainConfig(epochs=1, batch_size=8, log_every=1, progress=False,
                                                     warmup_steps=1), tmp_path / "run")
    trainer.fit()
    assert trainer.warnings and "training loss grew" in trainer.warnings[0]


def test_a_non_finite_validation_stops_before_anything_is_saved(tmp_path):
    from pixloom.errors import TrainingDiverged
    from pixloom.models.autoregressive.row_lstm import RowLSTM, RowLSTMConfig
    from pixloom.training.checkpoint import latest_checkpoint
    from pixloom.training.trainer import Trainer, TrainConfig

    from conftest import tiny_binary_dataset

    class Breaks(RowLSTM):
        validations = 0

        def loss(self, batch):
            out = super().loss(batch)
            if not self.training and not torch.is_grad_enabled():
                Breaks.validations += 1
                if Breaks.validations > 1:  # the second epoch's validation is infinite
                    return {**out, "loss": out["loss"] * float("inf")}
            return out

    data = tiny_binary_dataset(n=32)
    model = Breaks(RowLSTMConfig(height=6, width=6, hidden_size=8, num_layers=1))
    trainer = Trainer(model, data, data, TrainConfig(epochs=3, batch_size=16, progress=False, warmup_steps=1),
                      tmp_path / "run")
    with pytest.raises(TrainingDiverged, match="validation loss became inf"):
        trainer.fit()
    assert latest_checkpoint(tmp_path / "run").name == "ckpt-000000002"  # the first epoch's, nothing later


# -- 5. bounded work ------------------------------------------------------------------------------------------
def test_many_samples_are_drawn_in_batches_into_an_npz(tiny_run, tmp_path, monkeypatch):
    from pixloom.models.autoregressive.row_lstm import RowLSTM

    sizes = []
    real = RowLSTM.sample

    def spy(self, n, *args, **kwargs):
        sizes.append(n)
        return real(self, n, *args, **kwargs)

    monkeypatch.setattr(RowLSTM, "sample", spy)
    images = pixloom.sample(tiny_run, n=1300, seed=0, batch_size=500, out=tmp_path / "all.npz")
    assert sizes == [500, 500, 300] and images.shape == (1300, 1, 28, 28)
    with np.load(tmp_path / "all.npz") as saved:
        assert np.array_equal(saved["images"], images.numpy())


# -- 7. help ----------------------------------------------------------------------------------------------------
def test_every_option_has_help_and_train_lists_the_models_and_data(capsys):
    from pixloom.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.dest != "help":
                assert action.help, f"pixloom {name} {action.option_strings or action.dest} has no help"
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    assert "pixel-rnn" in text and "show-attend-tell" in text and "binarized-mnist" in text and "flickr8k" in text
    assert "(default: 64)" in text  # the batch size's default is shown


def test_a_warmup_longer_than_the_run_is_shortened_with_a_note(tmp_path, capsys):
    code, _, err = run_cli(["train", "row-lstm", "--data", "sample-binarized", *TINY, "--limit-train", "64",
                            "--limit-valid", "8", "--epochs", "1", "--warmup-steps", "500", "--out", tmp_path / "w",
                            "--quiet"], capsys)
    assert code == 0 and "warmup_steps 500 is as long as the whole schedule" in err
    assert json.loads((tmp_path / "w" / "train_config.json").read_text())["train"]["warmup_steps"] == 0
