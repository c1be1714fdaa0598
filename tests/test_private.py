"""Differentially private training: accounting as Opacus', per-example clipping, the budget never
passed, resume keeps the accountant, and what cannot be private is refused."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("opacus")

import pixloom  # noqa: E402
from pixloom.cli import main  # noqa: E402
from pixloom.models.classifiers.row_lstm import RowLSTMClassifier, RowLSTMClassifierConfig  # noqa: E402
from pixloom.training.private import PrivateTrainer  # noqa: E402
from pixloom.training.trainer import TrainConfig  # noqa: E402

COMMON = ["--data", "sample", "--set", "hidden_size=16", "--limit-train", "512", "--limit-valid", "64",
          "--batch-size", "64", "--lr", "5e-3", "--warmup-steps", "2", "--seed", "2", "--quiet"]


def tiny():
    torch.manual_seed(0)
    return RowLSTMClassifier(RowLSTMClassifierConfig(hidden_size=8))


def test_accounting_matches_opacus_privacy_engine(tmp_path):
    from opacus import PrivacyEngine

    data = pixloom.load_dataset("sample", "train").subset(400)
    trainer = PrivateTrainer(tiny(), data, data, TrainConfig(epochs=2, batch_size=40, progress=False),
                             tmp_path / "run", privacy={"epsilon": 4.0, "delta": 1e-5, "max_grad_norm": 1.0})
    summary = trainer.fit()
    steps = summary["global_step"]
    assert steps == 20 and trainer.epsilon() <= 4.0
    # Opacus' own pipeline with the same noise, sampling rate and number of steps
    model = torch.nn.Linear(4, 2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(400, 4), torch.zeros(400).long()),
                                         batch_size=40)
    engine = PrivacyEngine(accountant="rdp")
    model, optimizer, loader = engine.make_private(module=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                                                   data_loader=loader, noise_multiplier=trainer.noise_multiplier,
                                                   max_grad_norm=1.0, poisson_sampling=True)
    taken = 0
    while taken < steps:
        for x, y in loader:
            if taken == steps:
                break
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            taken += 1
    assert trainer.epsilon() == pytest.approx(engine.get_epsilon(1e-5), rel=1e-9)


def test_each_example_gradient_is_clipped(tmp_path):
    data = pixloom.load_dataset("sample", "train").subset(64)
    trainer = PrivateTrainer(tiny(), data, data, TrainConfig(epochs=1, batch_size=8, progress=False), tmp_path / "run",
                             privacy={"epsilon": 5.0, "max_grad_norm": 0.1})
    optimizer = trainer.optimizers["model"]
    optimizer.noise_multiplier = 0.0  # look at the clipping alone
    batch = data.get_batch(torch.arange(8))
    batch["image"] = batch["image"].clone()
    batch["image"][0] = 255  # one outlier
    batch["label"] = batch["label"].clone()
    batch["label"][0] = (batch["label"][0] + 1) % 10
    trainer.model.train()
    optimizer.zero_grad()
    trainer.model.loss(batch)["loss"].backward()
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    per_example = torch.cat([p.grad_sample.flatten(1) for p in params], dim=1)  # (8, parameters)
    norms = per_example.norm(dim=1)
    assert float(norms.max()) > 0.5  # unclipped, some examples' gradients are far above 0.1
    optimizer.pre_step()  # clip, add (no) noise, average
    summed = torch.cat([p.grad.flatten() for p in params]) * 8
    clipped = (per_example * (0.1 / (norms + 1e-6)).clamp(max=1.0)[:, None]).sum(0)
    torch.testing.assert_close(summed, clipped, rtol=1e-4, atol=1e-6)
    assert float(summed.norm()) <= 8 * 0.1 + 1e-5


def test_a_private_run_never_passes_its_epsilon_and_says_it_was_private(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "row-lstm-classifier", *COMMON, "--epochs", "20", "--dp-epsilon", "0.5",
                 "--out", run]) == 0
    lines = (run / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    spent = [float(line.split(",")[header.index("valid_epsilon")]) for line in lines[1:]]
    assert spent and max(spent) <= 0.5 and spent[-1] > 0.4
    privacy = json.loads((run / "config.json").read_text())["privacy"]
    assert privacy["trained_privately"] and privacy["target_epsilon"] == 0.5 and privacy["epsilon_spent"] <= 0.5
    assert json.loads((run / "train_config.json").read_text())["privacy"]["noise_multiplier"] > 0
    readme = (run / "README.md").read_text()  # and says so in words
    assert "differentially private" in readme and f"({privacy['epsilon_spent']:.3g}, 1e-05)" in readme
    model = pixloom.from_pretrained(run)  # an ordinary model again: nn.LSTM with the same weights
    assert isinstance(model.rnn, torch.nn.LSTM) and model.provenance["privacy"]["delta"] == 1e-5


def test_resume_keeps_the_accountant(tmp_path):
    common = [*COMMON, "--epochs", "2", "--dp-epsilon", "3"]
    assert main(["train", "row-lstm-classifier", *common, "--out", tmp_path / "whole"]) == 0
    assert main(["train", "row-lstm-classifier", *common, "--max-steps", "11", "--out", tmp_path / "split"]) == 0
    assert main(["train", "row-lstm-classifier", "--out", tmp_path / "split", "--resume", "--quiet"]) == 0

    def last(run):
        lines = (run / "metrics.csv").read_text().splitlines()
        header = lines[0].split(",")
        return float(lines[-1].split(",")[header.index("valid_epsilon")]), lines[-1].split(",")[0]

    assert last(tmp_path / "whole") == last(tmp_path / "split")
    a, b = (pixloom.from_pretrained(tmp_path / r / "checkpoints" / "ckpt-000000016") for r in ("whole", "split"))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("argv,fragment", [
    (["cnn-classifier", "--data", "sample"], "BatchNorm"),
    (["pixel-rnn", "--data", "sample-binarized", "--set", "num_layers=1", "--set", "hidden=4"], "per-example"),
    (["seq-autoencoder", "--data", "sample-binarized"], "after training"),
    (["mlp-gan", "--data", "sample"], "two networks"),
    (["row-lstm", "--data", "sample-binarized", "--dp-delta", "2"], "--dp-delta"),
])
def test_what_cannot_be_private_is_refused(argv, fragment, tmp_path, capsys):
    code = main(["train", *argv, "--dp-epsilon", "3", "--limit-train", "64", "--limit-valid", "16",
                 "--out", tmp_path / "x", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and fragment in err[-1] and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "x" / "model.safetensors").exists()


def test_the_private_generators_train(tmp_path):
    for name in ("row-lstm", "pixel-lstm"):
        assert main(["train", name, "--data", "sample-binarized", "--set", "hidden_size=8", "--set", "num_layers=1",
                     "--limit-train", "256", "--limit-valid", "32", "--batch-size", "64", "--epochs", "1",
                     "--dp-epsilon", "10", "--out", tmp_path / name, "--quiet"]) == 0
        privacy = json.loads((tmp_path / name / "config.json").read_text())["privacy"]
        assert 0 < privacy["epsilon_spent"] <= 10
