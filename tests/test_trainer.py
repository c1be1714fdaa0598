"""Trainer: learning, exact resume, crash-safe checkpoints, NaN handling, logs and pictures."""

import csv
import math

import pytest
import torch

from pixloom.errors import PixloomError, TrainingDiverged
from pixloom.models.autoregressive.row_lstm import RowLSTM, RowLSTMConfig
from pixloom.training import checkpoint as checkpoint_module
from pixloom.training.checkpoint import latest_checkpoint
from pixloom.training.trainer import Trainer, TrainConfig

from conftest import tiny_binary_dataset


def _model(seed=0):
    torch.manual_seed(seed)
    return RowLSTM(RowLSTMConfig(height=6, width=6, levels=2, hidden_size=16, num_layers=1, dropout=0.0))


def _config(**kw):
    base = dict(epochs=3, batch_size=16, lr=1e-2, warmup_steps=2, log_every=1, seed=3, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def _losses(run_dir):
    with open(run_dir / "train_log.csv", newline="") as handle:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(handle)]


def test_training_lowers_validation_loss_and_writes_run(tmp_path):
    data = tiny_binary_dataset(n=128)
    valid = tiny_binary_dataset(n=32, seed=1)
    model = _model()
    before = Trainer(model, data, valid, _config(), tmp_path / "probe").validate()["loss"]
    trainer = Trainer(_model(), data, valid, _config(epochs=4), tmp_path / "run")
    trainer.fit()
    after = RowLSTM.from_pretrained(tmp_path / "run")
    after_loss = Trainer(after, data, valid, _config(), tmp_path / "probe2").validate()["loss"]
    assert after_loss < before - 0.1
    for name in ("config.json", "model.safetensors", "metrics.csv", "train_log.csv", "loss.png", "train_config.json"):
        assert (tmp_path / "run" / name).is_file(), name
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        assert [int(float(r["epoch"])) for r in csv.DictReader(handle)] == [1, 2, 3, 4]


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resume_reproduces_an_uninterrupted_run(tmp_path, ema_decay):
    data = tiny_binary_dataset(n=100)  # 7 steps per epoch, the last one partial
    valid = tiny_binary_dataset(n=20, seed=1)
    Trainer(_model(), data, valid, _config(ema_decay=ema_decay), tmp_path / "full").fit()
    # Stop mid-epoch (step 10 of 21), then resume in a fresh Trainer with a fresh model object.
    stopped = Trainer(_model(), data, valid, _config(max_steps=10, ema_decay=ema_decay), tmp_path / "split")
    first = stopped.fit()
    assert first["stopped_early"] and first["global_step"] == 10
    assert stopped.summary_line(first).startswith("stopped at the step budget after 10 steps")
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it
    Trainer(_model(seed=99), data, valid, _config(ema_decay=ema_decay), tmp_path / "split").fit(resume=True)
    full, split = _losses(tmp_path / "full"), _losses(tmp_path / "split")
    assert len(full) == 21
    assert full == split  # bit-for-bit equal losses at every step
    a = RowLSTM.from_pretrained(tmp_path / "full").state_dict()
    b = RowLSTM.from_pretrained(tmp_path / "split").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_starting_over_an_existing_run_is_refused(tmp_path):
    data = tiny_binary_dataset(n=32)
    Trainer(_model(), data, data, _config(epochs=1), tmp_path / "run").fit()
    with pytest.raises(PixloomError, match="continue it with resume"):
        Trainer(_model(), data, data, _config(epochs=1), tmp_path / "run").fit()


def test_crash_while_checkpointing_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    data = tiny_binary_dataset(n=32)
    run = tmp_path / "run"
    Trainer(_model(), data, data, _config(epochs=1), run).fit()
    good = latest_checkpoint(run)
    real_save = checkpoint_module.atomic_save_tensors

    def crash(path, tensors, metadata=None):
        if path.name == "optimizer.safetensors":
            raise OSError("disk full")
        real_save(path, tensors, metadata)

    monkeypatch.setattr(checkpoint_module, "atomic_save_tensors", crash)
    with pytest.raises(OSError):
        Trainer(_model(), data, data, _config(epochs=3), run).fit(resume=True)
    assert latest_checkpoint(run) == good  # `latest` still names the complete checkpoint
    monkeypatch.setattr(checkpoint_module, "atomic_save_tensors", real_save)
    summary = Trainer(_model(), data, data, _config(epochs=2), run).fit(resume=True)
    assert summary["epoch"] == 2
    assert not list(run.rglob("*.tmp"))  # no temp files left behind


def test_nan_loss_stops_with_a_clear_message_and_keeps_checkpoint(tmp_path):
    data = tiny_binary_dataset(n=32)
    run = tmp_path / "run"
    Trainer(_model(), data, data, _config(epochs=1), run).fit()
    good = latest_checkpoint(run)

    class Diverging(RowLSTM):  # the loss turns NaN on the first step after the resume
        def loss(self, batch):
            out = super().loss(batch)
            return {**out, "loss": out["loss"] * float("nan")}

    diverging = Diverging(_model().config)
    with pytest.raises(TrainingDiverged) as info:
        Trainer(diverging, data, data, _config(epochs=2), run).fit(resume=True)
    message = str(info.value)
    assert "nan" in message and "last good checkpoint" in message and "\n" not in message
    assert latest_checkpoint(run) == good


def test_checkpoint_files_hold_no_pickles(tmp_path):
    data = tiny_binary_dataset(n=32)
    Trainer(_model(), data, data, _config(epochs=1), tmp_path / "run").fit()
    ckpt = latest_checkpoint(tmp_path / "run")
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == ["config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"]
    for path in ckpt.iterdir():
        assert not path.read_bytes().startswith(b"\x80"), f"{path.name} looks like a pickle"


def test_time_budget_stops_and_keeps_a_usable_model(tmp_path):
    data = tiny_binary_dataset(n=64)
    summary = Trainer(_model(), data, data, _config(epochs=50, max_minutes=1e-9), tmp_path / "run").fit()
    assert summary["stopped_early"] and summary["global_step"] == 1
    model = RowLSTM.from_pretrained(tmp_path / "run")
    with torch.no_grad():
        assert math.isfinite(float(model.log_prob(data.images[:2]).sum()))


class _Scorer:
    """A validation scorer with a higher-is-better figure; remembers the model's weights per epoch."""

    scripted = [0.1, 0.5, 0.2]

    def __init__(self):
        self.snapshots = []

    def __call__(self, model, valid_data):
        self.snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"score": self.scripted[len(self.snapshots) - 1]}


def test_model_chosen_on_the_models_own_validation_figure(tmp_path):
    data = tiny_binary_dataset(n=64)
    valid = tiny_binary_dataset(n=16, seed=1)
    torch.manual_seed(0)
    model = RowLSTM(RowLSTMConfig(height=6, width=6, levels=2, hidden_size=16, num_layers=1, dropout=0.0))
    scorer = _Scorer()
    trainer = Trainer(model, data, valid, _config(epochs=3), tmp_path / "run", scorer=scorer,
                      selection=("score", "max"))
    summary = trainer.fit()
    model = scorer
    assert len(model.snapshots) == 3
    saved = RowLSTM.from_pretrained(tmp_path / "run").state_dict()
    best = model.snapshots[1]  # epoch 2 scored highest, though the loss kept falling after it
    assert all(torch.equal(saved[k], best[k]) for k in best)
    assert any(not torch.equal(best[k], model.snapshots[2][k]) for k in best)
    assert trainer.describe_best() == "best valid score 0.5000"
    assert trainer.summary_line(summary) == (f"finished after 12 steps ({summary['train_seconds'] / 60:.1f} min); "
                                             f"best valid score 0.5000; run directory: {tmp_path / 'run'}")
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        assert [float(r["valid_score"]) for r in csv.DictReader(handle)] == [0.1, 0.5, 0.2]


def test_weight_decay_uses_decoupled_adamw(tmp_path):
    data = tiny_binary_dataset(n=32)
    plain = Trainer(_model(), data, data, _config(), tmp_path / "a")
    decayed = Trainer(_model(), data, data, _config(weight_decay=0.1), tmp_path / "b")
    assert type(plain.optimizers["model"]) is torch.optim.Adam
    assert isinstance(decayed.optimizers["model"], torch.optim.AdamW)
    assert decayed.optimizers["model"].param_groups[0]["weight_decay"] == 0.1


def test_rmsprop_learns_and_a_resume_keeps_the_optimizer_it_was_trained_with(tmp_path):
    data = tiny_binary_dataset(n=64)
    valid = tiny_binary_dataset(n=32, seed=1)
    before = Trainer(_model(), data, valid, _config(), tmp_path / "probe").validate()["loss"]
    trainer = Trainer(_model(), data, valid, _config(optimizer="rmsprop", lr=3e-3, max_steps=6), tmp_path / "run")
    assert type(trainer.optimizers["model"]) is torch.optim.RMSprop
    trainer.fit()
    assert trainer.validate()["loss"] < before - 0.05
    with pytest.raises(PixloomError, match="optimizer must be rmsprop to resume this run") as info:
        Trainer(_model(), data, valid, _config(), tmp_path / "run").fit(resume=True)
    assert "\n" not in str(info.value)
    summary = Trainer(_model(), data, valid, _config(optimizer="rmsprop", lr=3e-3, max_steps=8),
                      tmp_path / "run").fit(resume=True)
    assert summary["global_step"] == 8  # the same optimizer resumes
    with pytest.raises(PixloomError, match="optimizer must be adam or rmsprop, got 'sgd'"):
        Trainer(_model(), data, valid, _config(optimizer="sgd"), tmp_path / "x")
    with pytest.raises(PixloomError, match="needs optimizer adam"):
        Trainer(_model(), data, valid, _config(optimizer="rmsprop", weight_decay=0.1), tmp_path / "x")


class _RecordingTrainer(Trainer):
    """Keeps the raw weights after every optimiser step."""

    def train_step(self, batch):
        figures = super().train_step(batch)
        self.history.append({k: v.detach().clone() for k, v in self.model.named_parameters()})
        return figures


def test_moving_average_of_the_weights_is_what_is_validated_and_saved(tmp_path):
    data = tiny_binary_dataset(n=64)  # 4 steps
    valid = tiny_binary_dataset(n=16, seed=1)
    trainer = _RecordingTrainer(_model(), data, valid, _config(epochs=1, ema_decay=0.6), tmp_path / "run")
    trainer.history = []
    trainer.fit()
    assert len(trainer.history) == 4
    expected = trainer.history[0]  # the average starts at the first step's weights
    for weights in trainer.history[1:]:
        expected = {k: 0.6 * expected[k] + 0.4 * weights[k] for k in expected}
    saved = dict(RowLSTM.from_pretrained(tmp_path / "run").named_parameters())
    for name, value in expected.items():
        torch.testing.assert_close(saved[name], value, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(saved[k], trainer.history[-1][k]) for k in expected)
    # The validation loss in metrics.csv is the averaged model's, not the raw one's.
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        logged = float(next(csv.DictReader(handle))["valid_loss"])
    averaged = Trainer(RowLSTM.from_pretrained(tmp_path / "run"), data, valid, _config(), tmp_path / "p1").validate()
    raw = Trainer(trainer.model, data, valid, _config(), tmp_path / "p2").validate()
    assert logged == pytest.approx(averaged["loss"], abs=1e-6)
    assert abs(logged - raw["loss"]) > 1e-5
    # The checkpoint keeps the average, so that a resumed run goes on averaging.
    assert (latest_checkpoint(tmp_path / "run") / "averaged.safetensors").is_file()


def test_moving_average_decay_outside_zero_to_one_is_refused(tmp_path):
    with pytest.raises(PixloomError, match="ema must be below 1"):
        Trainer(_model(), tiny_binary_dataset(n=16), tiny_binary_dataset(n=8), _config(ema_decay=1.0), tmp_path)


def test_fractional_epochs_end_the_schedule_inside_an_epoch(tmp_path):
    data = tiny_binary_dataset(n=160)  # 10 steps per epoch
    valid = tiny_binary_dataset(n=20, seed=1)
    run = tmp_path / "run"
    trainer = Trainer(_model(), data, valid, _config(epochs=1.5, warmup_steps=1), run)
    assert trainer.total_steps == 15
    summary = trainer.fit()
    assert summary["global_step"] == 15 and not summary["stopped_early"]
    with open(run / "train_log.csv", newline="") as handle:
        lrs = [float(r["lr"]) for r in csv.DictReader(handle)]
    assert len(lrs) == 15 and lrs[-1] == pytest.approx(1e-2 * 0.05, rel=1e-3)  # the cosine reached its floor
    with open(run / "metrics.csv", newline="") as handle:
        assert [float(r["epoch"]) for r in csv.DictReader(handle)] == [1.0, 1.5]  # validated at the end
    assert (run / "model.safetensors").is_file()
    # Resuming a finished fractional run trains nothing; a longer horizon goes on from step 15.
    again = Trainer(_model(), data, valid, _config(epochs=1.5, warmup_steps=1), run).fit(resume=True)
    assert again["global_step"] == 15
    longer = Trainer(_model(), data, valid, _config(epochs=2, warmup_steps=1), run).fit(resume=True)
    assert longer["global_step"] == 20 and longer["epoch"] == 2


def test_epochs_must_be_positive(tmp_path):
    data = tiny_binary_dataset(n=32)
    with pytest.raises(PixloomError, match="epochs must be a finite number above 0"):
        Trainer(_model(), data, data, _config(epochs=0), tmp_path / "run")
