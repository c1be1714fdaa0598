"""What differential privacy costs in speed, and where the time goes.

    python bench/bench_private.py --model row-lstm-classifier --steps 30 --out bench/results/private-speed.json

Trains the same model on the same MNIST sample batches (64 images) in one process, four ways, and
reports images/s and the ratios: torch's fused nn.LSTM; Opacus' DPLSTM without privacy; DPLSTM with
per-example gradients (GradSampleModule) but no clipping or noise; and full DP-SGD (per-example
gradients, clipping, noise, the accountant). A torch.profiler table of the DP-SGD step shows the
operators the time goes to.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    import pixloom
    from pixloom.models.registry import get_model_class
    from pixloom.tasks.training import image_model_config
    from pixloom.training.private import swap_recurrent_layers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="row-lstm-classifier")
    parser.add_argument("--data", default="sample")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    data = pixloom.load_dataset(args.data, "train")
    cls = get_model_class(args.model)
    batches = [data.get_batch(torch.arange(k * args.batch_size, (k + 1) * args.batch_size)) for k in range(args.steps)]

    def build(private_layers: bool):
        torch.manual_seed(0)
        model = cls(image_model_config(cls, data, {}, conditional=False))
        if private_layers:
            swap_recurrent_layers(model)
        return model.train()

    def timed(model, optimizer, per_example: bool = False) -> float:
        for batch in batches[:3]:  # warm-up
            optimizer.zero_grad()
            model.loss(batch)["loss"].backward()
            optimizer.step()
        started = time.perf_counter()
        for batch in batches:
            optimizer.zero_grad()
            model.loss(batch)["loss"].backward()
            optimizer.step()
        return args.steps * args.batch_size / (time.perf_counter() - started)

    results = {}
    fused = build(False)
    results["fused nn.LSTM"] = timed(fused, torch.optim.Adam(fused.parameters(), lr=1e-3))
    dp_layers = build(True)
    results["DPLSTM, no privacy"] = timed(dp_layers, torch.optim.Adam(dp_layers.parameters(), lr=1e-3))
    sampled = build(True)
    GradSampleModule(sampled, loss_reduction="mean")
    results["DPLSTM + per-example gradients"] = timed(sampled, torch.optim.Adam(sampled.parameters(), lr=1e-3))
    private = build(True)
    GradSampleModule(private, loss_reduction="mean")
    optimizer = DPOptimizer(torch.optim.Adam(private.parameters(), lr=1e-3), noise_multiplier=1.0, max_grad_norm=1.0,
                            expected_batch_size=args.batch_size)
    results["DP-SGD (clipping + noise)"] = timed(private, optimizer)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches[:10]:
            optimizer.zero_grad()
            private.loss(batch)["loss"].backward()
            optimizer.step()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    print(table, file=sys.stderr)
    base = results["fused nn.LSTM"]
    out = {"benchmark": "private-speed", "model": args.model, "batch_size": args.batch_size, "steps": args.steps,
           "threads": torch.get_num_threads(), "platform": platform.platform(),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": " ".join(["python", "bench/bench_private.py"] + sys.argv[1:]),
           "images_per_second": {k: round(v, 1) for k, v in results.items()},
           "slowdown_vs_fused": {k: round(base / v, 2) for k, v in results.items()},
           "profile_top_ops": [line for line in table.splitlines()[:16]]}
    from pixloom.io import atomic_write_json

    atomic_write_json(args.out, out)
    for k, v in results.items():
        print(f"{k:34s} {v:8.1f} images/s  ({base / v:.1f}x slower than fused)", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
