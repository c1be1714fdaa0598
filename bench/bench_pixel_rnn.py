"""PixelRNN (Row LSTM / Diagonal BiLSTM): training throughput, peak memory, loop share, sampling.

The paper's MNIST setup at a small width: 7 spatial LSTM layers, h = 16, 28x28 binary images, one
CPU thread. Every configuration runs in a fresh subprocess so its peak memory is its own:

* training: images/s of one step (forward + backward + Adam) at batch 16 and 64, median of 5
  steps after 2 warm-up steps, as wall time and as the process's CPU time (the machine may be
  shared; CPU time is what the step itself costs);
* memory: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the subprocess after the timed steps
  (peak resident set: weights, activations, allocator caches and the ~300 MB of the torch
  runtime), and the same figure before the first step (the baseline);
* loop share: one profiled step (torch.profiler); the time inside the ``record_function`` ranges
  ``pixel_rnn.recurrent_loop`` (forward) and ``pixel_rnn.recurrent_loop_backward`` over the time of
  the whole step;
* sampling: wall time to draw 16 images with the cached sampler (``sample``) and with the naive one
  (``sample_naive``, one full forward pass per pixel). The naive sampler is timed on the first
  ``--naive-pixels`` pixels of the 16 images (the others given, so they cost nothing) and
  extrapolated linearly to all 784: each of its steps is one full forward pass of the same size.
  The cached sampler is also timed for 1 image, to show that batches amortise its per-step cost.

Usage::

    python bench/bench_pixel_rnn.py [--output bench/results/pixel_rnn.json] [--naive-pixels 28]

Prints a table and writes the JSON via a temporary file and ``os.replace``.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing pixloom

VARIANTS = ("row_lstm", "diagonal_bilstm")
BATCHES = (16, 64)
WARMUP, REPEATS = 2, 5
SAMPLES = 16
CONFIG = dict(height=28, width=28, levels=2, num_layers=7, hidden=16)
LOOP_RANGES = ("pixel_rnn.recurrent_loop", "pixel_rnn.recurrent_loop_backward")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _model(variant: str):
    import torch

    from pixloom.models.autoregressive.pixel_rnn import PixelRNN, PixelRNNConfig

    torch.set_num_threads(1)
    torch.manual_seed(0)
    return PixelRNN(PixelRNNConfig(variant=variant, **CONFIG))


def worker_train(variant: str, batch: int) -> dict:
    """Time training steps, then profile one; runs in its own process."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    model = _model(variant)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = {"image": torch.randint(0, 2, (batch, 1, 28, 28), dtype=torch.uint8)}
    baseline = _rss_mb()

    def step():
        optimiser.zero_grad(set_to_none=True)
        model.loss(data)["loss"].backward()
        optimiser.step()

    wall, cpu = [], []
    for run in range(WARMUP + REPEATS):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        step()
        if run >= WARMUP:
            wall.append(time.perf_counter() - start_wall)
            cpu.append(time.process_time() - start_cpu)
    peak = _rss_mb()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with record_function("train_step"):
            step()
    events = {e.key: e for e in prof.key_averages()}
    step_us = events["train_step"].cpu_time_total
    loop_us = {name: events[name].cpu_time_total for name in LOOP_RANGES if name in events}
    ranked = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    top = [{"op": e.key, "self_ms": round(e.self_cpu_time_total / 1e3, 1), "calls": e.count}
           for e in ranked if not e.key.startswith(("pixel_rnn.", "train_step", "autograd::", "_LSTMScan"))][:6]
    return {
        "variant": variant, "batch": batch,
        "step_wall_s": [round(t, 4) for t in wall], "step_cpu_s": [round(t, 4) for t in cpu],
        "images_per_s_wall": round(batch / statistics.median(wall), 1),
        "images_per_s_cpu": round(batch / statistics.median(cpu), 1),
        "baseline_rss_mb": round(baseline), "peak_rss_mb": round(peak),
        "profiled_step_ms": round(step_us / 1e3, 1),
        "loop_forward_ms": round(loop_us.get(LOOP_RANGES[0], 0) / 1e3, 1),
        "loop_backward_ms": round(loop_us.get(LOOP_RANGES[1], 0) / 1e3, 1),
        "loop_share": round(sum(loop_us.values()) / step_us, 3),
        "top_ops_by_self_cpu": top,
    }


def worker_sample(variant: str, naive_pixels: int) -> dict:
    """Cached vs naive sampling of 16 images; runs in its own process."""
    import torch

    from pixloom.models.autoregressive.pixel_rnn import _NaiveSampler

    model = _model(variant).eval()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    model.sample(2, generator=g())  # warm-up
    timings = {}
    for n in (SAMPLES, 1):
        start = time.perf_counter()
        model.sample(n, generator=g())
        timings[n] = time.perf_counter() - start
    # Naive: only the first `naive_pixels` pixels (raster order) are drawn, the rest are given.
    images = torch.zeros(SAMPLES, 1, 28, 28, dtype=torch.uint8)
    known = torch.ones_like(images, dtype=torch.bool)
    known.view(SAMPLES, -1)[:, :naive_pixels] = False
    start = time.perf_counter()
    with torch.no_grad():
        model._generate(images, known, 1.0, None, g(), _NaiveSampler)
    naive_measured = time.perf_counter() - start
    naive_full = naive_measured * (28 * 28) / naive_pixels
    return {
        "variant": variant, "images": SAMPLES,
        "cached_s": round(timings[SAMPLES], 3), "cached_1_image_s": round(timings[1], 3),
        "naive_pixels_measured": naive_pixels, "naive_measured_s": round(naive_measured, 3),
        "naive_s_extrapolated": round(naive_full, 1),
        "naive_over_cached": round(naive_full / timings[SAMPLES], 1),
    }


def _run_worker(*args: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run([sys.executable, __file__, "--worker", *args], env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"worker {' '.join(args)} failed:\n{done.stderr}")
    return json.loads(next(line for line in reversed(done.stdout.splitlines()) if line.startswith("{")))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "pixel_rnn.json")
    parser.add_argument("--naive-pixels", type=int, default=28, help="pixels the naive sampler is timed on")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, variant, number = args.worker
        result = worker_train(variant, int(number)) if kind == "train" else worker_sample(variant, int(number))
        print(json.dumps(result))
        return

    import torch

    load_before = os.getloadavg()
    print(f"torch {torch.__version__}, 1 thread, {_cpu_model()}, load average {load_before[0]:.2f}")
    print(f"training: 7 layers, h=16, 28x28 binary; median of {REPEATS} steps after {WARMUP} warm-up "
          "(forward+backward+Adam); one fresh process per row\n")
    header = (f"{'variant':<16} {'batch':>5} {'img/s wall':>10} {'img/s cpu':>9} {'step s':>7} "
              f"{'peak MB':>8} {'base MB':>8} {'loop %':>6}")
    print(header + "\n" + "-" * len(header))
    training = []
    for variant in VARIANTS:
        for batch in BATCHES:
            r = _run_worker("train", variant, str(batch))
            training.append(r)
            print(f"{variant:<16} {batch:>5} {r['images_per_s_wall']:>10.1f} {r['images_per_s_cpu']:>9.1f} "
                  f"{statistics.median(r['step_wall_s']):>7.3f} {r['peak_rss_mb']:>8} {r['baseline_rss_mb']:>8} "
                  f"{100 * r['loop_share']:>5.0f}%")

    print(f"\nsampling {SAMPLES} images (wall s); naive timed on {args.naive_pixels} of 784 pixels, extrapolated\n")
    header = f"{'variant':<16} {'cached':>7} {'cached n=1':>10} {'naive (extrap.)':>15} {'naive/cached':>12}"
    print(header + "\n" + "-" * len(header))
    sampling = []
    for variant in VARIANTS:
        r = _run_worker("sample", variant, str(args.naive_pixels))
        sampling.append(r)
        print(f"{variant:<16} {r['cached_s']:>7.2f} {r['cached_1_image_s']:>10.2f} "
              f"{r['naive_s_extrapolated']:>15.1f} {r['naive_over_cached']:>11.0f}x")

    report = {
        "benchmark": "PixelRNN training throughput, peak memory, recurrent-loop share and sampling",
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "threads": 1,
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {**CONFIG, "channels": 1},
        "training": {
            "method": f"forward+backward+Adam step on random binary images; median of {REPEATS} steps after "
                      f"{WARMUP} warm-up; images_per_s_cpu uses the process CPU time of the step",
            "memory_method": "resource.getrusage(RUSAGE_SELF).ru_maxrss of a fresh subprocess per row, "
                             "after the timed steps (peak_rss_mb) and before the first step (baseline_rss_mb); "
                             "includes the torch runtime",
            "loop_share_method": "torch.profiler over one step: CPU time inside record_function ranges "
                                 f"{', '.join(LOOP_RANGES)} / the whole step",
            "results": training,
        },
        "sampling": {
            "method": f"wall time for {SAMPLES} images; naive = sample_naive's loop timed on the first "
                      f"{args.naive_pixels} pixels (the rest given) and extrapolated linearly to 784 pixels "
                      "(every naive step is one full forward pass of the same size)",
            "naive_extrapolated": True,
            "results": sampling,
        },
    }
    from pixloom.io import atomic_write_json

    atomic_write_json(args.output, report)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
