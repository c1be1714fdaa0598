"""One Trainer for every pixloom model.

The model supplies ``loss(batch) -> dict`` (a scalar ``"loss"`` plus figures to log); the Trainer
supplies everything else: Adam (or RMSProp) with warm-up and cosine decay, gradient clipping, a progress bar,
validation every epoch, CSV (and TensorBoard, when installed) logs, a loss-curve PNG, crash-safe
checkpoints, exact ``resume`` and a time budget. A GAN overrides only :meth:`Trainer.train_step`
(and :meth:`Trainer.make_optimizers`).

Resumption is exact on CPU: the data order of epoch ``e`` comes from a generator seeded with
``(seed, e)``, and a checkpoint stores the position inside the epoch, the optimizer and scheduler
states and every RNG state, so a resumed run logs the same losses as an uninterrupted one.

Under ``torchrun`` the same loop trains data-parallel (:mod:`pixloom.training.distributed`): each
process takes its share of every batch, gradients are averaged over the processes, and process 0
alone writes logs, checkpoints and the best model.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pixloom.errors import ArgumentError, PixloomError, TrainingDiverged, arg
from pixloom.io import atomic_write_json, atomic_write_text
from pixloom.training import distributed
from pixloom.training.averaging import WeightAverage
from pixloom.training.checkpoint import (latest_checkpoint, load_checkpoint, process_random_state, refuse_existing_run,
                                      save_checkpoint)


@dataclass
class TrainConfig:
    epochs: float = 10  # a fraction is allowed: 0.5 runs (and schedules) half an epoch's steps
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # adam (AdamW with weight_decay) | rmsprop (the PixelRNN paper's choice)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05  # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # max global gradient norm; 0 disables
    max_minutes: float | None = None  # stop (with a checkpoint) after this much training time
    max_steps: int | None = None  # stop (with a checkpoint) after this many optimiser steps in all
    checkpoint_minutes: float = 10.0  # also checkpoint this often inside an epoch
    ema_decay: float = 0.0  # > 0: validate, pick and save a moving average of the weights
    eval_batch_size: int = 256
    log_every: int = 20  # steps between rows of train_log.csv
    seed: int = 0
    device: str = "auto"
    progress: bool = True


OPTIMIZERS = ("adam", "rmsprop")


def check_train_config(config: TrainConfig) -> None:
    """One-line errors (naming the argument) for training settings the Trainer cannot use."""
    def number(name, value, least=None, above=None, integer=False):
        ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
        ok = ok and math.isfinite(value) and (least is None or value >= least) and (above is None or value > above)
        if not ok:
            bound = f"at least {least}" if least is not None else f"above {above}"
            raise ArgumentError(name, f"must be a {'whole' if integer else 'finite'} number {bound}, got {value!r}")

    number("epochs", config.epochs, above=0)
    number("batch_size", config.batch_size, least=1, integer=True)
    number("lr", config.lr, above=0)
    number("weight_decay", config.weight_decay, least=0)
    number("grad_clip", config.grad_clip, least=0)
    number("warmup_steps", config.warmup_steps, least=0, integer=True)
    number("ema", config.ema_decay, least=0)
    if config.ema_decay >= 1:
        raise ArgumentError("ema", f"must be below 1, got {config.ema_decay}")
    if config.max_minutes is not None:
        number("max_minutes", config.max_minutes, above=0)
    if config.max_steps is not None:
        number("max_steps", config.max_steps, least=1, integer=True)
    if config.optimizer not in OPTIMIZERS:
        raise ArgumentError("optimizer", f"must be {' or '.join(OPTIMIZERS)}, got {config.optimizer!r}")
    if config.optimizer != "adam" and config.weight_decay:
        raise ArgumentError("weight_decay", "is decoupled AdamW decay; it needs optimizer adam")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PixloomError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise PixloomError(f"unknown device '{name}'; use auto, cpu or cuda")
    return torch.device(name)


def remove_stale_temporaries(run_dir: Path) -> None:
    """Temporary files of atomic writes that a killed process left behind (``.NAME.*.tmp``)."""
    for path in list(run_dir.glob(".*.tmp")) + list(run_dir.glob("checkpoints/*/.*.tmp")):
        path.unlink(missing_ok=True)


def epoch_order(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of epoch ``epoch``: a pure function of (seed, epoch)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_items, generator=generator)


def move_batch(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class Trainer:
    """Trains ``model`` (anything with ``loss(batch) -> dict`` and ``save_pretrained(dir)``) on
    ``train_data`` (``__len__`` and ``get_batch(indices) -> dict``), validating on ``valid_data``.

    ``scorer(model, valid_data) -> dict`` adds figures to each validation (e.g. a captioner's dev
    BLEU-4); ``selection = (name, "min" | "max")`` names the validation figure that picks the run's
    best model (default: the validation loss; None: the latest validated model is kept)."""

    def __init__(self, model, train_data, valid_data, config: TrainConfig, run_dir, run_info: dict | None = None,
                 scorer=None, selection: tuple[str, str] | None = ("loss", "min")):
        self.config = config
        self.scorer = scorer
        self.selection_rule = selection
        self.world = distributed.current()
        self.device = pick_device(config.device)
        if self.world.distributed and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.world.local_rank)  # one GPU per process
        self.model = model.to(self.device)
        self.train_data = train_data
        self.valid_data = valid_data
        self.run_dir = Path(run_dir)
        self.run_info = run_info or {}
        if len(train_data) == 0:
            raise PixloomError("the training set is empty")
        check_train_config(config)
        self.steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
        # The schedule's horizon; a fractional --epochs ends inside its last epoch.
        self.total_steps = math.ceil(self.steps_per_epoch * config.epochs)
        # Under torchrun, the wrapper whose forward is model.loss and whose backward averages gradients.
        self.parallel_loss = distributed.data_parallel(self.model, self.device) if self.world.distributed else None
        self.average = WeightAverage(self.model, config.ema_decay) if config.ema_decay else None
        self.optimizers = self.make_optimizers()
        self.schedulers = {name: self.make_scheduler(opt) for name, opt in self.optimizers.items()}
        self.counters = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_valid": None,
                         "train_seconds": 0.0, "optimizer": config.optimizer}
        self._tensorboard = None
        self.warnings: list[str] = []  # said to the user at the end (e.g. a loss that grew)
        self.stop_reason = "max_minutes"  # or "max_steps": which budget ended the run early

    # -- the parts a special model may override ----------------------------------------------
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.config.optimizer == "rmsprop":  # torch's defaults: alpha 0.99, eps 1e-8, no momentum
            return {"model": torch.optim.RMSprop(params, lr=self.config.lr)}
        if self.config.weight_decay:  # decoupled weight decay (Loshchilov and Hutter 2019)
            return {"model": torch.optim.AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay)}
        return {"model": torch.optim.Adam(params, lr=self.config.lr)}

    def make_scheduler(self, optimizer):
        warmup, total, floor = self.config.warmup_steps, max(1, self.total_steps), self.config.min_lr_ratio

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def train_step(self, batch: dict) -> dict[str, float]:
        """One optimisation step; returns the figures to log (all plain floats)."""
        self.model.train()
        optimizer = self.optimizers["model"]
        optimizer.zero_grad(set_to_none=True)
        out = self.parallel_loss(batch) if self.parallel_loss is not None else self.model.loss(batch)
        loss = out["loss"]
        self.check_finite(loss)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer_step(optimizer)
        self.schedulers["model"].step()
        return {k: float(v.detach()) for k, v in out.items()}

    def save_best(self) -> None:
        """Save the weights that validated best as the run directory's model."""
        self.evaluated_model().save_pretrained(self.run_dir)

    def batch_indices(self, order: torch.Tensor, index_in_epoch: int) -> torch.Tensor:
        """The examples of step ``index_in_epoch`` of an epoch whose shuffled order is ``order``."""
        size = self.config.batch_size
        return order[index_in_epoch * size:(index_in_epoch + 1) * size]

    def budget_left(self) -> bool:
        """Whether another step may be taken (a private run stops at its privacy budget)."""
        return True

    # -- helpers ---------------------------------------------------------------------------------
    def optimizer_step(self, optimizer) -> None:
        """``optimizer.step()``; an update too large for float32 (an absurd learning rate) stops the run
        like a NaN loss does."""
        try:
            optimizer.step()
        except RuntimeError as exc:
            if "overflow" not in str(exc):
                raise
            ckpt = latest_checkpoint(self.run_dir)
            kept = f"the last good checkpoint is kept in {ckpt}" if ckpt else "no checkpoint had been written yet"
            raise TrainingDiverged(f"the update overflowed float32 at step {self.counters['global_step']}; {kept}; "
                                   f"try a lower {arg('lr')}") from None

    def check_finite(self, loss: torch.Tensor) -> None:
        """Stop with a clear message on a NaN/inf loss (on any process, so that all of them stop)."""
        value = distributed.sum_over_world([float(loss.detach().sum())], self.world, self.device)[0]
        if not math.isfinite(value):
            ckpt = latest_checkpoint(self.run_dir)
            kept = f"the last good checkpoint is kept in {ckpt}" if ckpt else "no checkpoint had been written yet"
            raise TrainingDiverged(
                f"loss became {value} at step {self.counters['global_step']} "
                f"(epoch {self.counters['epoch'] + 1}); {kept}; try a lower {arg('lr')} or {arg('grad_clip')}"
            )

    def evaluated_model(self):
        """The weights that are validated and saved: the moving average under ``ema_decay``,
        else the trained model itself."""
        return self.average.model(self.model) if self.average is not None else self.model

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean of the model's loss figures on the validation set. Runs under a forked RNG so
        that validating never changes the random stream training sees."""
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            figures = self._validate()
            if self.scorer is not None and self.world.is_main:  # only process 0 picks and saves the best model
                figures.update(self.scorer(self.evaluated_model(), self.valid_data))
            return figures

    def selection(self, valid: dict[str, float]) -> tuple[str, float]:
        """The figure that picks the run's best model, as (name, value to minimise): the trainer's
        ``selection = (name, "min" | "max")`` when validation reported that figure, else the loss."""
        name, direction = self.selection_rule or ("loss", "min")
        if name not in valid:
            name, direction = "loss", "min"
        return name, (-valid[name] if direction == "max" else valid[name])

    def describe_best(self) -> str:
        """'best valid loss 0.1234' or 'best valid bleu4 0.2101' for the end-of-training line."""
        best = self.counters["best_valid"]
        if best is None:
            return "no validation yet"
        name = self.counters.get("best_figure", "loss")
        maximised = name != "loss" and self.selection_rule == (name, "max")
        return f"best valid {name} {-best if maximised else best:.4f}"

    def summary_line(self, summary: dict) -> str:
        """The line ``pixloom train`` prints when ``fit`` returns ``summary``."""
        budget = {"max_steps": "step", "privacy": "privacy"}.get(self.stop_reason, "time")
        state = f"stopped at the {budget} budget" if summary["stopped_early"] else "finished"
        return (f"{state} after {summary['global_step']} steps ({summary['train_seconds'] / 60:.1f} min); "
                f"{self.describe_best()}; run directory: {self.run_dir}")

    def _improves(self, valid: dict[str, float]) -> bool:
        if self.selection_rule is None:  # no figure to pick by: the latest validated model is kept
            self.counters["best_figure"] = "loss"
            self.counters["best_valid"] = valid.get("loss")
            return True
        name, value = self.selection(valid)
        best = self.counters["best_valid"]
        if best is None or value < best:
            self.counters["best_valid"] = value
            self.counters["best_figure"] = name
            return True
        return False

    def _validate(self) -> dict[str, float]:
        model = self.evaluated_model()
        model.eval()
        totals: dict[str, float] = {}
        count = 0
        size = self.config.eval_batch_size
        everything = torch.arange(len(self.valid_data))
        split = self.world.distributed and len(everything) >= self.world.size  # every process gets a share
        mine = everything[self.world.rank::self.world.size] if split else everything
        for start in range(0, len(mine), size):
            indices = mine[start:start + size]
            out = model.loss(move_batch(self.valid_data.get_batch(indices), self.device))
            for k, v in out.items():
                totals[k] = totals.get(k, 0.0) + float(v) * len(indices)
            count += len(indices)
        names = list(totals)  # the loss reports its figures in the same order on every process
        if split:
            *sums, count = distributed.sum_over_world([totals[k] for k in names] + [count], self.world, self.device)
            totals = dict(zip(names, sums))
        return {k: totals[k] / max(1, count) for k in names}

    def _save(self, every_process: bool = True) -> None:
        """Checkpoint. In a multi-process run every process must call this at the same step (it
        gathers their random states), unless ``every_process`` is False (an interrupt): then
        only process 0's random state is kept."""
        states = None
        if self.world.distributed and every_process:
            states = distributed.gather_random_states(self.world, self.device)
        if self.world.is_main:
            save_checkpoint(self.run_dir, self.counters["global_step"], self.model, self.optimizers, self.schedulers,
                            dict(self.counters), self.average, states)

    def _append_csv(self, name: str, row: dict) -> None:
        if not self.world.is_main:
            return
        path = self.run_dir / name
        new = not path.exists()
        fields = list(row)
        if not new:  # a resumed run keeps the columns its file started with
            with path.open(newline="") as handle:
                fields = next(csv.reader(handle), fields)
        with path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def _truncate_logs(self, step: int) -> None:
        """On resume, drop log rows written after the checkpoint we resume from."""
        if not self.world.is_main:
            return
        for name in ("train_log.csv", "metrics.csv"):
            path = self.run_dir / name
            if not path.exists():
                continue
            with path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            if not rows:
                continue
            keep = [r for r in rows if int(r["step"]) <= step]
            lines = [",".join(rows[0].keys())] + [",".join(r[k] for k in rows[0]) for r in keep]
            atomic_write_text(path, "\n".join(lines) + "\n")

    def _log_scalars(self, prefix: str, values: dict, step: int) -> None:
        if self._tensorboard is None:
            return
        for k, v in values.items():
            self._tensorboard.add_scalar(f"{prefix}/{k}", v, step)

    # -- the loop --------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict:
        """Train until ``epochs`` are done or ``max_minutes`` ran out; returns a summary dict."""
        cfg, world = self.config, self.world
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if world.is_main:
            remove_stale_temporaries(self.run_dir)
        torch.manual_seed(cfg.seed + 7919 * world.rank)  # each process draws its own noise
        if resume:
            ckpt = latest_checkpoint(self.run_dir)
            if ckpt is None:
                raise ArgumentError("resume", f"finds no checkpoint in {self.run_dir}")
            saved = load_checkpoint(ckpt, self.model, self.optimizers, self.schedulers, self.average)
            if saved.get("optimizer", "adam") != cfg.optimizer:  # their states hold different moments
                raise ArgumentError("optimizer", f"must be {saved.get('optimizer', 'adam')} to resume this run; or start "
                                    f"a new run from its weights with {arg('init')}")
            self.counters.update(saved)
            if world.distributed:
                state = process_random_state(ckpt, world.rank, world.size)
                if state is not None:
                    distributed.set_random_state(state, self.device)
                elif not world.is_main:  # saved by a different number of processes: a fresh stream
                    torch.manual_seed(cfg.seed + 7919 * world.rank + self.counters["global_step"])
            self._truncate_logs(self.counters["global_step"])
        else:
            refuse_existing_run(self.run_dir)
            if world.is_main:
                for name in ("train_log.csv", "metrics.csv"):
                    (self.run_dir / name).unlink(missing_ok=True)
        if world.is_main:
            atomic_write_json(self.run_dir / "train_config.json",
                              {"train": asdict(cfg), **self.run_info, "processes": world.size})
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:
                self._tensorboard = None

        started = time.monotonic()
        seconds_before = self.counters["train_seconds"]
        last_checkpoint = started
        stopped_early = False
        window: list[dict[str, float]] = []
        try:
            while (self.counters["epoch"] < cfg.epochs and self.counters["global_step"] < self.total_steps
                   and not stopped_early):
                epoch = self.counters["epoch"]
                order = epoch_order(len(self.train_data), cfg.seed, epoch)
                bar = tqdm(total=self.steps_per_epoch, initial=self.counters["step_in_epoch"],
                           desc=f"epoch {epoch + 1}/{cfg.epochs:g}", unit="step",
                           disable=not (cfg.progress and world.is_main),
                           dynamic_ncols=True, leave=True)
                while (self.counters["step_in_epoch"] < self.steps_per_epoch
                       and self.counters["global_step"] < self.total_steps and not stopped_early):
                    i = self.counters["step_in_epoch"]
                    if not self.budget_left():  # a private run's epsilon would pass its target
                        self.stop_reason = "privacy"
                        stopped_early = True
                        break
                    indices = distributed.shard(self.batch_indices(order, i), world)
                    figures = self.train_step(move_batch(self.train_data.get_batch(indices), self.device))
                    if self.average is not None:
                        self.average.update(self.model)
                    self.counters["step_in_epoch"] += 1
                    self.counters["global_step"] += 1
                    step = self.counters["global_step"]
                    now = time.monotonic()
                    self.counters["train_seconds"] = seconds_before + (now - started)
                    window.append(figures)
                    bar.update(1)
                    bar.set_postfix(loss=f"{figures['loss']:.4f}")
                    if step % cfg.log_every == 0:
                        self._log_train_window(window, epoch, i)
                        window = []
                    stopped_early, checkpoint_due = self._stop_or_checkpoint_now(now - last_checkpoint >= cfg.checkpoint_minutes * 60)
                    if not stopped_early and checkpoint_due:
                        self._save()
                        last_checkpoint = now
                bar.close()
                if self.counters["step_in_epoch"] == self.steps_per_epoch:
                    self._end_epoch(epoch)  # validates, keeps the best model, checkpoints
                    last_checkpoint = time.monotonic()
                elif stopped_early:
                    self._validate_partial_epoch()  # validates, keeps the best model, checkpoints
                else:  # a fractional --epochs: the schedule ended inside this epoch
                    self._validate_partial_epoch(schedule_done=True)
        except KeyboardInterrupt:
            self._save(every_process=False)  # the other processes may be anywhere
            raise PixloomError(f"interrupted; state saved, continue with {arg('resume')} in {self.run_dir}") from None
        finally:
            if self._tensorboard is not None:
                self._tensorboard.close()
        if world.is_main:
            self.plot()
            self._final_warnings()
        return {"stopped_early": stopped_early and self.counters["global_step"] < self.total_steps, **self.counters}

    def _stop_or_checkpoint_now(self, checkpoint_due: bool) -> tuple[bool, bool]:
        """(stop now, checkpoint now). The clocks of several processes differ: they stop when any
        of them is out of time, and checkpoint when process 0's clock says so, all at one step."""
        cfg = self.config
        out_of_time = cfg.max_minutes is not None and self.counters["train_seconds"] >= cfg.max_minutes * 60
        out_of_steps = cfg.max_steps is not None and self.counters["global_step"] >= cfg.max_steps
        self.stop_reason = "max_steps" if out_of_steps else "max_minutes"
        if self.world.distributed:
            main_due = checkpoint_due and self.world.is_main
            any_out, due = distributed.sum_over_world([float(out_of_time), float(main_due)], self.world, self.device)
            return any_out > 0 or out_of_steps, due > 0
        return out_of_time or out_of_steps, checkpoint_due

    def _log_train_window(self, window: list[dict[str, float]], epoch: int, index_in_epoch: int) -> None:
        """One row of train_log.csv: step, epoch, the window's mean loss, lr, seconds, then the mean
        of each other figure the loss reported (e.g. a self-critical run's reward)."""
        step = self.counters["global_step"]
        mean = {k: sum(f[k] for f in window) / len(window) for k in window[0] if all(k in f for f in window)}
        if self.world.distributed:  # the mean over the processes' shares
            names = list(mean)
            sums = distributed.sum_over_world([mean[k] for k in names], self.world, self.device)
            mean = {k: v / self.world.size for k, v in zip(names, sums)}
        self._note_training_loss(mean["loss"])
        row = {"step": step, "epoch": round(epoch + (index_in_epoch + 1) / self.steps_per_epoch, 5),
               "loss": mean.pop("loss"),
               "lr": self.optimizers[next(iter(self.optimizers))].param_groups[0]["lr"],
               "seconds": round(self.counters["train_seconds"], 2), **mean}
        self._append_csv("train_log.csv", row)
        self._log_scalars("train", {"loss": row["loss"]}, step)

    def _check_validation(self, valid: dict[str, float]) -> None:
        """Stop on a NaN or infinite validation loss, before anything of these weights is saved."""
        if not math.isfinite(valid.get("loss", 0.0)):
            ckpt = latest_checkpoint(self.run_dir)
            kept = f"the last checkpoint ({ckpt}) and the best model are kept" if ckpt else "nothing was saved"
            raise TrainingDiverged(f"validation loss became {valid['loss']} at step {self.counters['global_step']}; "
                                   f"{kept}; try a lower {arg('lr')} or {arg('grad_clip')}")

    def _note_training_loss(self, loss: float) -> None:
        lowest = self.counters.get("lowest_train_loss")
        if lowest is None or loss < lowest:
            self.counters["lowest_train_loss"] = loss
        self.counters["last_train_loss"] = loss

    def _final_warnings(self) -> None:
        """Say when a run ends much worse than it was: a loss that grew, a validation loss that rose."""
        lowest, last = self.counters.get("lowest_train_loss"), self.counters.get("last_train_loss")
        if lowest is not None and last is not None and lowest > 0 and last > 2 * lowest and last - lowest > 0.05:
            self.warnings.append(f"the training loss grew from {lowest:.4g} to {last:.4g} by the end: the run "
                                 f"diverged or its learning rate is too high (try a lower {arg('lr')}); the run "
                                 "directory keeps the model that validated best")
        best, final = self.counters.get("best_valid_loss"), self.counters.get("last_valid_loss")
        if best is not None and final is not None and best > 0 and final > 1.5 * best and final - best > 0.05:
            self.warnings.append(f"the validation loss rose from its best {best:.4g} to {final:.4g} (overfitting "
                                 "or divergence); the run directory keeps the model that validated best")

    def _note_validation_loss(self, valid: dict[str, float]) -> None:
        loss = valid.get("loss")
        if loss is None:
            return
        best = self.counters.get("best_valid_loss")
        self.counters["best_valid_loss"] = loss if best is None else min(best, loss)
        self.counters["last_valid_loss"] = loss

    def _end_epoch(self, epoch: int) -> None:
        valid = self.validate()
        self._check_validation(valid)
        self._note_validation_loss(valid)
        self.counters["epoch"] = epoch + 1
        self.counters["step_in_epoch"] = 0
        step = self.counters["global_step"]
        row = {"step": step, "epoch": epoch + 1, "seconds": round(self.counters["train_seconds"], 2)}
        row.update({f"valid_{k}": v for k, v in valid.items()})
        self._append_csv("metrics.csv", row)
        self._log_scalars("valid", valid, step)
        if self.world.is_main and self._improves(valid):
            self.save_best()  # the run directory itself is the best model
        self._save()
        if self.world.is_main:
            tqdm.write(f"epoch {epoch + 1}: valid " + ", ".join(f"{k} {v:.4f}" for k, v in valid.items()))

    def _validate_partial_epoch(self, schedule_done: bool = False) -> None:
        """On a budget stop, or at the end of a fractional last epoch, keep the current weights as the
        run's model if they validate best."""
        valid = self.validate()
        self._check_validation(valid)
        self._note_validation_loss(valid)
        epoch = self.counters["epoch"] + self.counters["step_in_epoch"] / self.steps_per_epoch
        row = {"step": self.counters["global_step"], "epoch": round(epoch, 4),
               "seconds": round(self.counters["train_seconds"], 2)}
        row.update({f"valid_{k}": v for k, v in valid.items()})
        self._append_csv("metrics.csv", row)
        improved = self.world.is_main and self._improves(valid)
        if improved:
            self.save_best()
        self._save()  # after the validation: a checkpoint never holds weights that validated to NaN
        if self.world.is_main:
            budget = {"max_steps": "step", "privacy": "privacy"}.get(self.stop_reason, "time")
            why = f"{self.config.epochs:g} epochs done" if schedule_done else f"{budget} budget reached"
            tqdm.write(f"{why} at step {self.counters['global_step']}: valid "
                       + ", ".join(f"{k} {v:.4f}" for k, v in valid.items()))

    def plot(self) -> Path | None:
        from pixloom.viz import plot_training_curves

        return plot_training_curves(self.run_dir)
