"""``pixloom demo``: train a small class-conditional row LSTM on the embedded MNIST sample, then draw
samples (one row per digit) and completions of half-hidden validation digits. No download.

The demo trains for a number of steps (1,400 by default, about a minute on 2 idle cores), not for a
fixed time, so a busy machine gives the same model, later; ``minutes`` caps the time (the demo then
says that its model is undertrained). The thread count follows the machine's load: on a machine
whose cores are busy, torch's threads wait on each other around every small op, and one thread per
free core is several times faster.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import torch

from pixloom.data.registry import load_dataset
from pixloom.io import atomic_write_json
from pixloom.metrics.likelihood import evaluate_likelihood
from pixloom.models.autoregressive.row_lstm import RowLSTM, RowLSTMConfig
from pixloom.models.image import known_rows_mask
from pixloom.tasks.common import check_number, check_positive_int, check_seed, ensure_writable_dir
from pixloom.training.allocator import tune_malloc_for_training
from pixloom.training.lock import RunLock
from pixloom.training.trainer import Trainer, TrainConfig
from pixloom.viz import completion_figure, save_grid

DEMO_DATA = "sample-binarized"
DEMO_STEPS = 1400
GOOD_VALID_NLL = 110.0  # nats; a demo model above this draws noisy digits (measured: 102.9 after 1,400 steps)


def busy_cores(samples: int = 5, interval: float = 0.05) -> float:
    """How many other processes are running right now: the median of a few readings of the kernel's
    count of runnable processes (less this one); the 1-minute load average where that is not readable."""
    readings = []
    for k in range(samples):
        try:
            with open("/proc/stat") as handle:
                line = next(row for row in handle if row.startswith("procs_running"))
            readings.append(int(line.split()[1]) - 1)
        except (OSError, StopIteration, ValueError, IndexError):
            break
        if k + 1 < samples:
            time.sleep(interval)
    if readings:
        return float(sorted(readings)[len(readings) // 2])
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def free_cores() -> int:
    """Cores not busy with other work right now (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, cores - int(busy_cores() + 0.25)))


def run_demo(out, steps: int = DEMO_STEPS, minutes: float = 10.0, seed: int = 0, quiet: bool = False,
             threads: int | None = None) -> dict:
    tune_malloc_for_training()
    out = Path(out)
    steps = check_positive_int(steps, "steps", most=1_000_000)
    check_number(minutes, "minutes", above=0)
    seed = check_seed(seed)
    if threads is None and "OMP_NUM_THREADS" not in os.environ:
        threads = free_cores()
    if threads is not None:
        torch.set_num_threads(check_positive_int(threads, "threads"))
    ensure_writable_dir(out, "out")
    run_dir = out / "run"
    with RunLock(out):
        if run_dir.exists():
            shutil.rmtree(run_dir)  # the demo always starts afresh
        return _demo(out, run_dir, steps, minutes, seed, quiet)


def _demo(out: Path, run_dir: Path, steps: int, minutes: float, seed: int, quiet: bool) -> dict:
    train = load_dataset(DEMO_DATA, "train")
    valid = load_dataset(DEMO_DATA, "valid")
    test = load_dataset(DEMO_DATA, "test")
    torch.manual_seed(seed)
    config = RowLSTMConfig(levels=2, num_classes=10, cell="lstm", hidden_size=256, num_layers=2)
    model = RowLSTM(config)
    print(f"pixloom demo: training a class-conditional row LSTM ({model.num_parameters():,} parameters) on the "
          f"embedded MNIST sample ({len(train):,} images) for {steps:,} steps on {torch.get_num_threads()} "
          f"thread(s)", file=sys.stderr)
    steps_per_epoch = -(-len(train) // 64)
    trainer = Trainer(model, train, valid, TrainConfig(epochs=steps / steps_per_epoch, batch_size=64, lr=2e-3,
                                                       warmup_steps=50, max_minutes=minutes, max_steps=steps,
                                                       seed=seed, progress=not quiet),
                      run_dir, run_info={"model": RowLSTM.name, "data": DEMO_DATA, "command": "pixloom demo"})
    started = time.perf_counter()
    summary = trainer.fit()
    train_seconds = time.perf_counter() - started

    best = RowLSTM.from_pretrained(run_dir)
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat_interleave(10)
    samples = best.sample(100, temperature=1.0, label=labels, generator=generator)
    save_grid(samples, config.levels, out / "samples.png", nrow=10, scale=3)

    keep, per_image = 14, 6
    originals = valid.images[:8]
    batch = originals.repeat_interleave(per_image, 0)
    completions = best.complete(batch, keep, label=valid.labels[:8].repeat_interleave(per_image), generator=generator)
    completion_figure(originals, known_rows_mask(best.image_shape, keep), completions.view(8, per_image, 1, 28, 28),
                      2, out / "completions.png")
    shutil.copyfile(run_dir / "loss.png", out / "loss.png")

    valid_result = evaluate_likelihood(best, valid, progress=False)
    test_result = evaluate_likelihood(best, test, progress=False)
    metrics = {
        "model": RowLSTM.name, "config": vars(config), "data": DEMO_DATA, "n_train": len(train),
        "steps": summary["global_step"], "steps_asked": steps, "threads": torch.get_num_threads(),
        "train_seconds": round(train_seconds, 1),
        "valid_nll_nats": round(valid_result["nll_nats"], 3), "valid_bits_per_dim": round(valid_result["bits_per_dim"], 4),
        "test_nll_nats": round(test_result["nll_nats"], 3), "test_bits_per_dim": round(test_result["bits_per_dim"], 4),
        "n_test_images": test_result["n_images"],
    }
    metrics["good"] = metrics["valid_nll_nats"] <= GOOD_VALID_NLL
    atomic_write_json(out / "metrics.json", metrics)
    print(f"\nvalid NLL {metrics['valid_nll_nats']:.2f} nats/image ({metrics['valid_bits_per_dim']:.4f} bits/dim), "
          f"test NLL {metrics['test_nll_nats']:.2f} nats on {metrics['n_test_images']} embedded test digits "
          f"after {summary['global_step']:,} steps in {train_seconds:.0f} s", file=sys.stderr)
    if summary["global_step"] < steps:
        print(f"pixloom demo: note: the {minutes:g}-minute cap stopped training after {summary['global_step']:,} of "
              f"{steps:,} steps (a busy machine?); the pictures may look noisy", file=sys.stderr)
    if not metrics["good"]:
        print(f"pixloom demo: note: the model is not trained enough yet (valid NLL {metrics['valid_nll_nats']:.1f} > "
              f"{GOOD_VALID_NLL:g} nats): its digits will look noisy; rerun with more steps", file=sys.stderr)
    print(f"wrote {out / 'samples.png'} (rows: digits 0-9), {out / 'completions.png'} "
          f"(occluded | 6 completions | original), {out / 'loss.png'}, {out / 'metrics.json'}; "
          f"the trained model is in {run_dir}", file=sys.stderr)
    return metrics


__all__ = ["run_demo", "free_cores"]
