"""``pixloom demo``: train a small class-conditional row LSTM on the embedded MNIST sample for about a
minute, then draw samples (one row per digit) and completions of half-hidden validation digits."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from pixloom.data import load_dataset
from pixloom.io import atomic_write_json
from pixloom.metrics.likelihood import evaluate_likelihood
from pixloom.models.autoregressive.row_lstm import RowLSTM, RowLSTMConfig
from pixloom.models.image_model import known_rows_mask
from pixloom.train.trainer import Trainer, TrainConfig
from pixloom.viz import occluded, save_grid, to_unit

DEMO_DATA = "sample-binarized"


def run_demo(out: Path, minutes: float = 1.0, seed: int = 0, quiet: bool = False) -> dict:
    out = Path(out)
    run_dir = out / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the demo always starts afresh
    train = load_dataset(DEMO_DATA, "train")
    valid = load_dataset(DEMO_DATA, "valid")
    test = load_dataset(DEMO_DATA, "test")
    torch.manual_seed(seed)
    config = RowLSTMConfig(levels=2, num_classes=10, cell="lstm", hidden_size=256, num_layers=2)
    model = RowLSTM(config)
    print(f"pixloom demo: training a class-conditional row LSTM ({model.num_parameters():,} parameters) on the "
          f"embedded MNIST sample ({len(train):,} images) for {minutes:g} min")
    trainer = Trainer(model, train, valid, TrainConfig(epochs=30, batch_size=64, lr=2e-3, warmup_steps=50,
                                                       max_minutes=minutes, seed=seed, progress=not quiet),
                      run_dir, run_info={"model": RowLSTM.name, "data": DEMO_DATA, "command": "pixloom demo"})
    started = time.perf_counter()
    summary = trainer.fit()
    train_seconds = time.perf_counter() - started

    best = RowLSTM.from_pretrained(run_dir)
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat_interleave(10)
    samples = best.sample(100, temperature=1.0, label=labels, generator=generator)
    save_grid(samples, config.levels, out / "samples.png", nrow=10, scale=3)

    keep = 14
    originals = valid.images[:8]
    known = known_rows_mask(best.image_shape, keep)
    per_image = 6
    batch = originals.repeat_interleave(per_image, 0)
    completions = best.complete(batch, keep, label=valid.labels[:8].repeat_interleave(per_image), generator=generator)
    rows = []
    for k in range(len(originals)):
        rows += [occluded(originals[k:k + 1], known, 2), to_unit(completions[k * per_image:(k + 1) * per_image], 2),
                 to_unit(originals[k:k + 1], 2)]
    save_grid(torch.cat(rows), 2, out / "completions.png", nrow=per_image + 2, scale=3)
    shutil.copyfile(run_dir / "loss.png", out / "loss.png")

    valid_result = evaluate_likelihood(best, valid, progress=False)
    test_result = evaluate_likelihood(best, test, progress=False)
    metrics = {
        "model": RowLSTM.name, "config": vars(config), "data": DEMO_DATA, "n_train": len(train),
        "steps": summary["global_step"], "train_seconds": round(train_seconds, 1),
        "valid_nll_nats": round(valid_result["nll_nats"], 3), "valid_bits_per_dim": round(valid_result["bits_per_dim"], 4),
        "test_nll_nats": round(test_result["nll_nats"], 3), "test_bits_per_dim": round(test_result["bits_per_dim"], 4),
        "n_test_images": test_result["n_images"],
    }
    atomic_write_json(out / "metrics.json", metrics)
    print(f"\nvalid NLL {metrics['valid_nll_nats']:.2f} nats/image ({metrics['valid_bits_per_dim']:.4f} bits/dim), "
          f"test NLL {metrics['test_nll_nats']:.2f} nats on {metrics['n_test_images']} embedded test digits")
    print(f"wrote {out / 'samples.png'} (rows: digits 0-9), {out / 'completions.png'} "
          f"(occluded | 6 completions | original), {out / 'loss.png'}, {out / 'metrics.json'}; "
          f"the trained model is in {run_dir}")
    return metrics
