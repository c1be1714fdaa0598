"""Training throughput of the latent-variable models at paper-like sizes.

One optimisation step = ``model.loss(batch)`` + backward + ``Adam.step()`` on a batch of 64
binarized 28x28 digits from the embedded sample, on one CPU thread. Each model runs
``--warmup`` untimed steps, then ``--repeats`` timed ones; the table shows the median.

Sizes:

* ``seq-autoencoder``: LSTM encoder and decoder, 256 units, latent 32 (Srivastava et al. 2015);
* ``recurrent-vae``:   LSTM encoder and decoder, 256 units, latent 32 (Kingma & Welling 2014);
* ``draw``:            the paper's MNIST model: T = 64, read 2x2, write 5x5, 256 units, z 100
  (Gregor et al. 2015, table 3);
* ``draw-no-attention``: the same without attention.

Usage::

    python bench/bench_latent.py [--repeats 5] [--warmup 2] [--output bench/results/latent.json]

Prints a table and writes the JSON (via a temporary file and ``os.replace``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing pixloom

from pixloom.data import load_dataset  # noqa: E402
from pixloom.io import atomic_write_json  # noqa: E402
from pixloom.models.latent.draw import DRAW, DRAWConfig  # noqa: E402
from pixloom.models.latent.rvae import RecurrentVAE, RecurrentVAEConfig  # noqa: E402
from pixloom.models.latent.seq_autoencoder import SeqAutoencoder, SeqAutoencoderConfig  # noqa: E402

BATCH = 64
CASES = {
    "seq-autoencoder": lambda: SeqAutoencoder(SeqAutoencoderConfig(hidden_size=256, latent_size=32)),
    "recurrent-vae": lambda: RecurrentVAE(RecurrentVAEConfig(hidden_size=256, latent_size=32)),
    "draw": lambda: DRAW(DRAWConfig(steps=64, hidden_size=256, latent_size=100, read_n=2, write_n=5)),
    "draw-no-attention": lambda: DRAW(DRAWConfig(steps=64, hidden_size=256, latent_size=100, attention=False)),
}


def time_steps(model, batch: dict, warmup: int, repeats: int) -> list[float]:
    """Seconds per training step (forward + backward + Adam), ``repeats`` timed after ``warmup``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    times = []
    for step in range(warmup + repeats):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        model.loss(batch)["loss"].backward()
        optimizer.step()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--models", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "latent.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    batch = {"image": load_dataset("sample-binarized", "train").images[:BATCH]}
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results = {}
    print(f"{'model':<20} {'params':>10} {'s/step':>8} {'images/s':>9}")
    for name in args.models:
        model = CASES[name]()
        times = time_steps(model, batch, args.warmup, args.repeats)
        median = statistics.median(times)
        results[name] = {
            "n_parameters": model.num_parameters(),
            "config": vars(model.config),
            "seconds_per_step": median,
            "images_per_second": BATCH / median,
            "all_seconds": times,
        }
        print(f"{name:<20} {model.num_parameters():>10,} {median:>8.3f} {BATCH / median:>9.1f}")
    record = {
        "benchmark": "training step (loss + backward + Adam), batch 64, binarized 28x28, 1 CPU thread",
        "median_of": args.repeats, "warmup": args.warmup, "batch_size": BATCH,
        "results": results,
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "processor": platform.processor(), "cpu_count": os.cpu_count(),
        "load_average_at_start": load_before,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    atomic_write_json(args.output, record)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
