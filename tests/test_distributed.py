"""Data-parallel training under torchrun equals single-process training on the same global batch."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from pixloom.models.autoregressive.row_lstm import RowLSTM
from pixloom.training import distributed

TRAIN = ["train", "row-lstm", "--data", "sample-binarized", "--limit-train", "320", "--limit-valid", "96",
         "--set", "hidden_size=32", "--set", "num_layers=1", "--batch-size", "16", "--epochs", "1",
         "--lr", "3e-3", "--seed", "5", "--device", "cpu", "--quiet"]  # 20 steps, one logged row


def _latest_weights(run):
    name = (run / "checkpoints" / "latest").read_text().strip()
    return load_file(str(run / "checkpoints" / name / "model.safetensors"))


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_two_processes_train_like_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "pixloom", *TRAIN, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "pixloom", *TRAIN, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr
    assert "in 2 processes" in two.stderr and two.stdout.count("finished after 20 steps") == 1

    one_weights, two_weights = _latest_weights(tmp_path / "one"), _latest_weights(tmp_path / "two")
    assert one_weights.keys() == two_weights.keys()
    for name in one_weights:  # each process took 8 of the 16 images; averaged gradients = whole-batch ones
        torch.testing.assert_close(two_weights[name], one_weights[name], rtol=1e-4, atol=1e-5)
    trained = RowLSTM.from_pretrained(tmp_path / "two")
    torch.manual_seed(5)  # the CLI seeds before building the model: this is the untrained start
    untrained = RowLSTM(trained.config).state_dict()
    assert max(float((untrained[k] - v).abs().max()) for k, v in trained.state_dict().items()) > 1e-3

    # The logged loss is the mean over both shares, and validation covers the whole split once.
    one_log, two_log = _rows(tmp_path / "one" / "train_log.csv"), _rows(tmp_path / "two" / "train_log.csv")
    assert [r["step"] for r in one_log] == [r["step"] for r in two_log]
    for a, b in zip(one_log, two_log):
        assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=1e-4)
    one_valid, two_valid = _rows(tmp_path / "one" / "metrics.csv"), _rows(tmp_path / "two" / "metrics.csv")
    assert len(one_log) == len(two_log) == 1 and len(two_valid) == 1
    assert float(two_valid[0]["valid_nll_nats"]) == pytest.approx(float(one_valid[0]["valid_nll_nats"]), rel=1e-5)


def test_shard_splits_a_batch_and_never_leaves_a_process_empty():
    world = distributed.World(rank=1, size=2)
    assert distributed.shard(torch.arange(5), world).tolist() == [1, 3]
    assert distributed.shard(torch.arange(1), world).tolist() == [0]
    assert distributed.shard(torch.arange(5), distributed.World()).tolist() == [0, 1, 2, 3, 4]


WORKER = '''
import json, sys
from pathlib import Path
import torch
from pixloom.data.base import ImageDataset
from pixloom.models.autoregressive.row_lstm import RowLSTM, RowLSTMConfig
from pixloom.training import distributed
from pixloom.training.trainer import Trainer, TrainConfig

class Recording(RowLSTM):
    """Notes which images (numbered in their first row, in binary) each loss call saw."""
    seen = {"train": [], "valid": []}

    def loss(self, batch):
        ids = (batch["image"][:, 0, 0, :].long() * 2 ** torch.arange(6)).sum(1).tolist()
        self.seen["train" if self.training else "valid"].append(ids)
        return super().loss(batch)

def numbered(first, n):
    ids = torch.arange(first, first + n)
    images = (torch.rand(n, 1, 6, 6) < 0.3).to(torch.uint8)
    images[:, 0, 0, :] = ((ids[:, None] >> torch.arange(6)) & 1).to(torch.uint8)
    return ImageDataset(images, None, levels=2, name="numbered")

world = distributed.start("cpu")
torch.manual_seed(0)
model = Recording(RowLSTMConfig(height=6, width=6, levels=2, hidden_size=8, num_layers=1, dropout=0.0))
out = Path(sys.argv[1])
config = TrainConfig(epochs=1, batch_size=16, progress=False, log_every=2, device="cpu", eval_batch_size=5)
Trainer(model, numbered(0, 40), numbered(40, 10), config, out).fit()
(out / f"seen-{world.rank}.json").write_text(json.dumps(Recording.seen))
distributed.stop()
'''


def test_each_process_trains_and_validates_on_its_own_share(tmp_path):
    import json

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path / "run")], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = [json.loads((tmp_path / "run" / f"seen-{rank}.json").read_text()) for rank in (0, 1)]
    # 40 images in batches of 16: steps of 8 + 8, 8 + 8 and 4 + 4 images, never the same image twice.
    assert [len(ids) for ids in seen[0]["train"]] == [len(ids) for ids in seen[1]["train"]] == [8, 8, 4]
    trained = [i for rank in seen for ids in rank["train"] for i in ids]
    assert sorted(trained) == list(range(40))
    validated = [i for rank in seen for ids in rank["valid"] for i in ids]
    assert sorted(validated) == list(range(40, 50))
    assert len(set(i for ids in seen[0]["valid"] for i in ids)) == 5


def test_a_half_set_torchrun_environment_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from pixloom.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    assert main(["train", "row-lstm", "--data", "sample-binarized", "--max-steps", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pixloom: error: could not join the torchrun process group (WORLD_SIZE=2)")
    assert "MASTER_ADDR" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


NOISY = ["train", "recurrent-vae", "--data", "sample-binarized", "--limit-train", "160", "--limit-valid", "32",
         "--set", "hidden_size=16", "--set", "latent_size=4", "--batch-size", "16", "--epochs", "2",
         "--lr", "3e-3", "--seed", "3", "--device", "cpu", "--quiet"]  # 20 steps; each process draws its own z


def test_two_processes_resume_exactly(tmp_path):
    """A checkpoint keeps every process's random state, so a stopped and resumed two-process run of
    a model that samples noise in training ends with the very weights of an uninterrupted one."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "pixloom"]

    def run(*extra):
        done = subprocess.run([*torchrun, *NOISY, *extra], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr

    run("--out", str(tmp_path / "whole"))
    run("--out", str(tmp_path / "split"), "--max-steps", "13")  # stops mid-epoch 2
    assert (tmp_path / "split" / "checkpoints" / "ckpt-000000013" / "random_states.safetensors").is_file()
    run("--out", str(tmp_path / "split"), "--resume")
    whole, split = _latest_weights(tmp_path / "whole"), _latest_weights(tmp_path / "split")
    assert whole.keys() == split.keys()
    assert all(torch.equal(whole[k], split[k]) for k in whole)
    last_whole, last_split = _rows(tmp_path / "whole" / "metrics.csv")[-1], _rows(tmp_path / "split" / "metrics.csv")[-1]
    assert last_whole["step"] == last_split["step"] == "20"
    assert last_whole["valid_loss"] == last_split["valid_loss"]
