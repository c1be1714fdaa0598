"""Forward+backward time of the hand-written SequenceRNN against torch's fused RNN/LSTM/GRU.

Two MNIST-shaped workloads, batch 64, one layer:

* ``rows``:   a sequence of 28 image rows,  input 28, hidden 128;
* ``pixels``: a sequence of 784 pixels,     input 1,  hidden 64.

Each case runs on one CPU thread: 2 warm-up runs, then the median of 7 timed runs of
``forward`` + ``backward`` (loss = sum of the outputs and final states). The hand-written and fused
modules share their weights and alternate run by run in one process, so a slow spell on a shared
machine hits both and their ratio stays comparable. A torch.profiler run of the hand-written LSTM
on the pixel sequence records the top 5 ops by self CPU time.

Usage::

    python bench/bench_cells.py [--repeats 7] [--warmup 2] [--output bench/results/cells.json]

Prints a table and writes the JSON (via a temporary file and ``os.replace``).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing pixloom

from pixloom.io import atomic_write_json  # noqa: E402
from pixloom.nn import SequenceRNN  # noqa: E402

BATCH = 64
# name -> (sequence length, input size, hidden size)
WORKLOADS = {"rows": (28, 28, 128), "pixels": (784, 1, 64)}
CELL_TYPES = ("lstm", "gru", "rnn")


def forward_backward(module: torch.nn.Module, x: torch.Tensor) -> None:
    """One training-style step without the optimiser: forward, scalar loss, backward."""
    module.zero_grad(set_to_none=True)
    output, final = module(x)
    finals = final if isinstance(final, tuple) else (final,)
    loss = output.sum() + sum(f.sum() for f in finals)
    loss.backward()


def time_pair(hand, fused, x, warmup: int, repeats: int) -> tuple[list[float], list[float]]:
    """Seconds per forward+backward for both modules, alternating run by run."""
    hand_times, fused_times = [], []
    for run in range(warmup + repeats):
        for module, times in ((hand, hand_times), (fused, fused_times)):
            start = time.perf_counter()
            forward_backward(module, x)
            elapsed = time.perf_counter() - start
            if run >= warmup:
                times.append(elapsed)
    return hand_times, fused_times


def profile_top_ops(module, x, top: int = 5) -> list[dict]:
    """The ``top`` ops by self CPU time over one forward+backward of ``module``."""
    forward_backward(module, x)  # warm up outside the profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        forward_backward(module, x)
    events = prof.key_averages()
    total_us = sum(e.self_cpu_time_total for e in events)
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [
        {
            "op": e.key,
            "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 3),
            "self_cpu_percent": round(100 * e.self_cpu_time_total / total_us, 1),
            "calls": e.count,
        }
        for e in ranked
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "cells.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(0)

    results = []
    header = f"{'cell':<5} {'workload':<8} {'T':>4} {'I':>3} {'H':>4} {'hand ms':>9} {'fused ms':>9} {'hand/fused':>10}"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, batch {BATCH}, "
          f"median of {args.repeats} after {args.warmup} warm-up runs (forward+backward)")
    print(header)
    print("-" * len(header))
    for workload, (seq_len, input_size, hidden_size) in WORKLOADS.items():
        x = torch.randn(BATCH, seq_len, input_size)  # (B, T, I)
        for cell_type in CELL_TYPES:
            hand = SequenceRNN(cell_type, input_size, hidden_size, batch_first=True)
            fused = hand.to_torch()  # same weights, torch's fused kernel
            hand_times, fused_times = time_pair(hand, fused, x, args.warmup, args.repeats)
            hand_ms = 1e3 * statistics.median(hand_times)
            fused_ms = 1e3 * statistics.median(fused_times)
            row = {
                "cell": cell_type,
                "workload": workload,
                "seq_len": seq_len,
                "input_size": input_size,
                "hidden_size": hidden_size,
                "batch": BATCH,
                "hand_ms": round(hand_ms, 3),
                "fused_ms": round(fused_ms, 3),
                "ratio_hand_over_fused": round(hand_ms / fused_ms, 3),
                "hand_ms_all": [round(1e3 * t, 3) for t in hand_times],
                "fused_ms_all": [round(1e3 * t, 3) for t in fused_times],
            }
            results.append(row)
            print(f"{cell_type:<5} {workload:<8} {seq_len:>4} {input_size:>3} {hidden_size:>4} "
                  f"{hand_ms:>9.1f} {fused_ms:>9.1f} {hand_ms / fused_ms:>9.2f}x")

    seq_len, input_size, hidden_size = WORKLOADS["pixels"]
    top_ops = profile_top_ops(
        SequenceRNN("lstm", input_size, hidden_size, batch_first=True), torch.randn(BATCH, seq_len, input_size)
    )
    print(f"\nhand-written LSTM, T={seq_len}: top ops by self CPU time (one profiled forward+backward)")
    for op in top_ops:
        print(f"  {op['op']:<24} {op['self_cpu_ms']:>9.1f} ms {op['self_cpu_percent']:>5.1f}% {op['calls']:>6} calls")

    report = {
        "benchmark": "SequenceRNN (hand-written cells) vs torch fused RNN/LSTM/GRU, forward+backward",
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "statistic": "median",
        "results": results,
        "profile": {
            "module": "hand-written lstm",
            "workload": "pixels",
            "seq_len": seq_len,
            "input_size": input_size,
            "hidden_size": hidden_size,
            "batch": BATCH,
            "top_ops_by_self_cpu": top_ops,
        },
    }
    atomic_write_json(args.output, report)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
