"""Training and sampling throughput and peak memory of the image generators on this machine.

    python bench/bench_generators.py [--threads 2] [--models row-lstm,pixel-lstm]

Each configuration runs in a fresh subprocess so its peak memory (max RSS) is its own. Training:
forward + backward + Adam step on random binary 28x28 images, batch 64, median of N steps after
warm-up. Sampling: images/s for a batch of 64 (and wall time for 16). Saves
bench/results/generators.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {
    "row-lstm": {"hidden_size": 256, "num_layers": 2},
    "pixel-lstm": {"hidden_size": 128, "num_layers": 2},
    "pixel-gru": {"hidden_size": 128, "num_layers": 2, "cell": "gru", "_model": "pixel-lstm"},
}


def measure(name: str, batch: int, steps: int, threads: int) -> dict:
    import torch

    from pixloom.models import get_model_class

    torch.set_num_threads(threads)
    options = dict(CONFIGS[name])
    cls = get_model_class(options.pop("_model", name))
    torch.manual_seed(0)
    model = cls(cls.config_class(levels=2, **options))
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    images = torch.randint(0, 2, (batch, 1, 28, 28), dtype=torch.uint8)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for step in range(steps + 2):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        model.loss({"image": images})["loss"].backward()
        optimizer.step()
        if step >= 2:
            times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    train_step = statistics.median(times)
    model.eval()
    sample_times = {}
    for n in (16, 64):
        started = time.perf_counter()
        model.sample(n, generator=torch.Generator().manual_seed(0))
        sample_times[n] = time.perf_counter() - started
    return {
        "model": name, "options": options, "n_parameters": model.num_parameters(), "batch": batch,
        "train_step_s_median": round(train_step, 4), "train_images_per_s": round(batch / train_step, 1),
        "peak_rss_mb": round(peak / 1024, 1), "rss_growth_during_training_mb": round((peak - rss_before) / 1024, 1),
        "sample_16_s": round(sample_times[16], 3), "sample_64_images_per_s": round(64 / sample_times[64], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=",".join(CONFIGS))
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, 64, args.steps, args.threads)))
        return
    rows = []
    for name in args.models.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", name, "--threads", str(args.threads),
                              "--steps", str(args.steps)], check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{name:<11} params {r['n_parameters']:>9,}  train {r['train_images_per_s']:>7.1f} img/s "
              f"(batch 64)  peak RSS {r['peak_rss_mb']:>7.1f} MB  sample 16 in {r['sample_16_s']:.2f} s, "
              f"{r['sample_64_images_per_s']:.1f} img/s at batch 64")
    import torch

    record = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "torch": torch.__version__, "threads": args.threads, "results": rows}
    path = ROOT / "bench" / "results" / "generators.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
