"""GAN figures: sample quality over seeds (with the real-data floor), training and sampling speed.

    python bench/bench_gan.py quality mnist-mlp-gan mnist-lstm-gan --data mnist --data-dir ../shared/data/mnist \
        -n 10000 --seeds 0 1 2 --out bench/results/gan-quality.json
    python bench/bench_gan.py speed mnist-mlp-gan mnist-lstm-gan --out bench/results/gan-speed.json

``quality`` gives, for each generator, pixloom.sample_metrics (Fréchet and kernel distance on the
shipped classifier's features, precision, recall, class shares) as the mean and spread over the seeds,
with ``n`` samples per seed against the first ``n`` test images, and the floor: the first ``n``
training images against the same test images. ``speed`` times, in one process so the ratios are fair,
training steps of 64 images (discriminator and generator updates, images/s) and sampling (images/s).
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


def stamp() -> dict:
    import torch

    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "command": " ".join(["python", "bench/bench_gan.py"] + sys.argv[1:])}


def quality(runs: list[str], data: str, data_dir: str | None, n: int, seeds: list[int]) -> dict:
    import pixloom
    from pixloom.tasks.sample_quality import real_floor

    out = {}
    for run in runs:
        started = time.perf_counter()
        figures = pixloom.sample_metrics(run, data=data, n=n, seeds=tuple(seeds), data_dir=data_dir)
        figures["seconds"] = round(time.perf_counter() - started, 1)
        out[run] = figures
        print(f"{run}: FD {figures['fd']:.2f} ± {figures.get('fd_std', 0):.2f}, precision {figures['precision']:.3f}, "
              f"recall {figures['recall']:.3f}, class shares {min(figures['class_shares']):.3f}.."
              f"{max(figures['class_shares']):.3f}", file=sys.stderr)
    out["real train images (floor)"] = real_floor(data, n=n, data_dir=data_dir)
    return out


def speed(runs: list[str], steps: int, data: str, data_dir: str | None) -> dict:
    import torch

    import pixloom

    dataset = pixloom.load_dataset(data, "train", data_dir=data_dir)
    batches = [dataset.get_batch(torch.arange(k * 64, (k + 1) * 64)) for k in range(steps + 3)]
    out = {}
    for run in runs:
        model = pixloom.from_pretrained(run).train()
        g_opt = torch.optim.Adam(model.generator_parameters(), lr=1e-6, betas=(0.5, 0.999))
        d_opt = torch.optim.Adam(model.discriminator_parameters(), lr=1e-6, betas=(0.5, 0.999))
        times = []
        for k, batch in enumerate(batches):
            started = time.perf_counter()
            d_opt.zero_grad()
            model.discriminator_loss(batch)["d_loss"].backward()
            d_opt.step()
            g_opt.zero_grad()
            model.generator_loss(batch)["g_loss"].backward()
            g_opt.step()
            if k >= 3:
                times.append(time.perf_counter() - started)
        model.eval()
        with torch.no_grad():
            model.sample(500, generator=torch.Generator().manual_seed(0))
            started = time.perf_counter()
            for seed in range(4):
                model.sample(1000, generator=torch.Generator().manual_seed(seed))
            sampling = 4000 / (time.perf_counter() - started)
        out[run] = {"model": model.name, "parameters": model.num_parameters(),
                    "train_images_per_second": round(64 * len(times) / sum(times), 1),
                    "sample_images_per_second": round(sampling, 1)}
        print(run, out[run], file=sys.stderr)
    return out


def main() -> None:
    from pixloom.io import atomic_write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["quality", "speed"])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--data-dir")
    parser.add_argument("-n", type=int, default=10000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=30, help="speed: timed training steps per model")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.what == "quality":
        results = quality(args.runs, args.data, args.data_dir, args.n, args.seeds)
    else:
        results = speed(args.runs, args.steps, args.data, args.data_dir)
    atomic_write_json(Path(args.out), {"benchmark": f"gan-{args.what}", **stamp(), "results": results})


if __name__ == "__main__":
    main()
