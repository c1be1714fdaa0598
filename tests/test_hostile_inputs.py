"""Generated hostile inputs (hypothesis): pictures, configs, weight files and argument values.

For every generated case the outcome is either a correct result or exit code 2 with one line on
stderr and no traceback; no payload in a file is ever executed; no partly written file is left.
A last test kills training with SIGKILL at random moments and checks that resuming always ends
with the weights of an uninterrupted run.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pixloom.cli import main  # noqa: E402

TINY = ["--set", "hidden_size=8", "--set", "num_layers=1"]
# derandomized: every run tries the same generated cases (a failure reproduces; CI is not flaky)
FAST = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile") / "row"
    assert main(["train", "row-lstm", "--data", "sample-binarized", "--limit-train", "64", "--limit-valid", "16",
                 "--epochs", "1", "--batch-size", "32", *TINY, "--out", str(path), "--quiet"]) == 0
    return path


def outcome(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err, err
    event(f"exit {code}")  # hypothesis --hypothesis-show-statistics counts the outcomes
    if code == 2:  # one error line, the last; what came before is progress ("training ...", notes)
        lines = [line for line in err.strip().splitlines() if line]
        errors = [line for line in lines if ": error: " in line]
        assert len(errors) == 1 and lines[-1] == errors[0], (argv, err)
    return code, out, err


def no_partial_files(folder: Path) -> None:
    leftovers = [p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".part"))]
    assert not leftovers, leftovers


# -- pictures ------------------------------------------------------------------------------------------------
MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "I;16", "I", "F", "CMYK", "YCbCr", "HSV"]
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}


@st.composite
def pictures(draw):
    """Bytes of a picture file: a real image of a random mode, size and format, maybe truncated or
    with flipped bytes, or bytes that are no picture at all."""
    kind = draw(st.sampled_from(["image", "image", "image", "truncated", "flipped", "garbage", "empty"]))
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=300))
    if kind == "empty":
        return b""
    mode = draw(st.sampled_from(MODES))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    if draw(st.booleans()):
        width, height = 28, 28
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    picture = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
    if draw(st.booleans()):
        alpha = Image.fromarray(rng.integers(0, 2, (height, width), dtype=np.uint8) * draw(st.sampled_from([0, 255])))
        picture.putalpha(alpha)
    try:
        picture = picture.convert(mode)
        buffer = io.BytesIO()
        picture.save(buffer, format=fmt)
    except (OSError, ValueError, KeyError):
        buffer = io.BytesIO()
        picture.convert("RGB").save(buffer, format="PNG")
    data = buffer.getvalue()
    if kind == "truncated":
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    elif kind == "flipped" and data:
        position = draw(st.integers(0, len(data) - 1))
        data = data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1:]
    return data


@settings(FAST, max_examples=150)
@given(data=pictures(), suffix=st.sampled_from([".png", ".jpg", ".gif", ".webp", ""]))
def test_any_picture_completes_or_is_one_line(run, tmp_path, capsys, data, suffix):
    picture = tmp_path / f"in{suffix}"
    picture.write_bytes(data)
    out = tmp_path / "c.png"
    out.unlink(missing_ok=True)
    code, _, err = outcome(["complete", run, "--image", picture, "--keep-rows", "10", "-n", "2", "--out", out],
                           capsys)
    if code == 0:
        assert Image.open(out).size[0] > 28  # a figure was written
    else:
        assert not out.exists()
    no_partial_files(tmp_path)


# -- configs ------------------------------------------------------------------------------------------------------
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-10 ** 6, 10 ** 6) |
                           st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
                           lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                                               children, max_size=3),
                           max_leaves=5)


@settings(FAST, max_examples=100)
@given(changes=st.dictionaries(st.sampled_from(["hidden_size", "num_layers", "cell", "levels", "height", "width",
                                                "channels", "num_classes", "dropout", "bogus"]),
                               JSON_VALUES, min_size=1, max_size=3),
       top=st.sampled_from(["keep", "model", "config", "whole"]))
def test_any_config_loads_and_samples_or_is_one_line(run, tmp_path, capsys, changes, top):
    target = tmp_path / "m"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(run, target, ignore=shutil.ignore_patterns("checkpoints", ".lock"))
    meta = json.loads((target / "config.json").read_text())
    meta["config"].update(changes)
    if top == "model":
        meta["model"] = next(iter(changes.values()))
    elif top == "config":
        meta["config"] = next(iter(changes.values()))
    elif top == "whole":
        meta = next(iter(changes.values()))
    (target / "config.json").write_text(json.dumps(meta))
    code, _, err = outcome(["sample", target, "-n", "2", "--seed", "0", "--out", tmp_path / "g.png"], capsys)
    if code == 0:
        assert Image.open(tmp_path / "g.png").size[0] > 28


# -- weight files ---------------------------------------------------------------------------------------------------
class Payload:
    """Unpickling this runs a command; pixloom must never unpickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@settings(FAST, max_examples=100)
@given(kind=st.sampled_from(["flip", "truncate", "header", "pickle", "empty", "append"]),
       position=st.floats(0, 1), byte=st.integers(0, 255))
def test_any_weight_file_loads_or_is_one_line_and_nothing_is_executed(run, tmp_path, capsys, kind, position, byte):
    target = tmp_path / "w"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(run, target, ignore=shutil.ignore_patterns("checkpoints", ".lock"))
    weights = target / "model.safetensors"
    data = weights.read_bytes()
    marker = tmp_path / "payload-ran"
    at = int(position * (len(data) - 1))
    if kind == "flip":
        data = data[:at] + bytes([data[at] ^ (byte or 1)]) + data[at + 1:]
    elif kind == "truncate":
        data = data[:at]
    elif kind == "header":  # a header that claims a different length
        data = struct.pack("<Q", byte * 1_000_003) + data[8:]
    elif kind == "pickle":
        data = pickle.dumps(Payload(marker))
    elif kind == "empty":
        data = b""
    else:
        data = data + bytes([byte]) * 16
    weights.write_bytes(data)
    code, _, err = outcome(["sample", target, "-n", "2", "--seed", "0", "--out", tmp_path / "g.png"], capsys)
    assert not marker.exists(), "a pickle payload was executed"
    if code == 2:
        assert "model.safetensors" in err or "weights" in err, err


# -- argument values ------------------------------------------------------------------------------------------------
NUMBERS = st.one_of(st.integers(-10 ** 20, 10 ** 20).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["nan", "inf", "-inf", "1e999", "0", "-0", "0x10", "", " ", "1_000", "½", "3.5"]),
                    st.text(max_size=6))


@settings(FAST, max_examples=120)
@given(flag=st.sampled_from(["-n", "--temperature", "--seed", "--batch-size", "--label", "--nrow"]), value=NUMBERS)
def test_any_sample_argument_samples_or_is_one_line(run, tmp_path, capsys, flag, value):
    if flag == "-n" and value.strip().lstrip("+").isdigit() and int(value) > 64:
        value = "64"  # keep the test fast; large counts are tested on their own
    out = tmp_path / "g.png"
    out.unlink(missing_ok=True)
    code, _, err = outcome(["sample", run, flag, value, "--out", out, "--quiet"], capsys)
    assert (code == 0) == out.exists()


@settings(FAST, max_examples=80)
@given(flag=st.sampled_from(["--lr", "--epochs", "--batch-size", "--warmup-steps", "--grad-clip", "--ema",
                             "--weight-decay", "--seed", "--limit-train", "--max-minutes"]), value=NUMBERS)
def test_any_train_argument_trains_or_is_one_line(tmp_path, capsys, flag, value):
    out = tmp_path / "r"
    shutil.rmtree(out, ignore_errors=True)
    code, _, err = outcome(["train", "row-lstm", "--data", "sample-binarized", *TINY, "--limit-train", "32",
                            "--limit-valid", "8", "--max-steps", "1", flag, value, "--out", out, "--quiet"], capsys)
    if code == 0:
        assert (out / "config.json").is_file()
    elif out.exists():  # refused while training (e.g. a learning rate that makes the loss infinite)
        no_partial_files(out)
        assert "loss became" in err, err


@settings(FAST, max_examples=40)
@given(flag=st.sampled_from(["--limit", "--batch-size", "--iw-samples", "--seed", "--split", "--beam"]), value=NUMBERS)
def test_any_eval_argument_scores_or_is_one_line(run, capsys, flag, value):
    code, out, _ = outcome(["eval", run, "--data", "sample-binarized", flag, value, "--limit", "8", "--quiet"]
                           if flag != "--limit" else ["eval", run, "--data", "sample-binarized", flag, value, "--quiet"],
                           capsys)
    if code == 0:
        result = json.loads(out)
        assert np.isfinite(result["nll_nats"]) and result["n_images"] >= 1


# -- SIGKILL at random moments ----------------------------------------------------------------------------------------
TRAINER = """
import sys, torch
sys.path.insert(0, sys.argv[3])
from conftest import tiny_binary_dataset
from pixloom.models.autoregressive.row_lstm import RowLSTM, RowLSTMConfig
from pixloom.training.trainer import Trainer, TrainConfig
torch.set_num_threads(1)
torch.manual_seed(0)
model = RowLSTM(RowLSTMConfig(height=6, width=6, levels=2, hidden_size=16, num_layers=1))
config = TrainConfig(epochs=4, batch_size=16, lr=1e-2, warmup_steps=2, seed=3, progress=False, log_every=1,
                     checkpoint_minutes=0.0)
data, valid = tiny_binary_dataset(n=128), tiny_binary_dataset(n=32, seed=1)
Trainer(model, data, valid, config, sys.argv[1]).fit(resume=sys.argv[2] == "resume")
print("done", flush=True)
"""


def test_training_killed_at_random_moments_resumes_to_the_uninterrupted_weights(tmp_path):
    from pixloom.io import read_json, load_tensors
    from pixloom.training.checkpoint import latest_checkpoint

    script = tmp_path / "train.py"
    script.write_text(TRAINER)
    tests = str(Path(__file__).resolve().parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def start(out, mode):
        return subprocess.Popen([sys.executable, str(script), str(out), mode, tests], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)

    whole = start(tmp_path / "whole", "new")
    assert whole.communicate(timeout=300)[0].strip().endswith("done")
    rng = random.Random(48)
    out, kills, finished = tmp_path / "killed", 0, False
    for attempt in range(12):
        mode = "resume" if (out / "checkpoints" / "latest").is_file() else "new"
        if mode == "new":
            shutil.rmtree(out, ignore_errors=True)
        process = start(out, mode)
        if attempt < 8:
            time.sleep(rng.uniform(1.5, 4.0))  # torch's import takes about 1.5 s; training about 2 s
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                # after every kill, every file the run names is whole (a temporary file may be left; the
                # resumed run removes it)
                if (out / "checkpoints" / "latest").is_file():
                    ckpt = latest_checkpoint(out)
                    read_json(ckpt / "trainer_state.json")
                    load_tensors(ckpt / "model.safetensors")
                continue
        stdout, stderr = process.communicate(timeout=300)
        if process.returncode == 0 and stdout.strip().endswith("done"):
            finished = True
            break
    assert finished and kills >= 2, (kills, finished)
    a = load_tensors(latest_checkpoint(tmp_path / "whole") / "model.safetensors")
    b = load_tensors(latest_checkpoint(out) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    no_partial_files(out)
