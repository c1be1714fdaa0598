"""Effect of pixloom's glibc malloc tuning (pixloom/training/allocator.py) on training steps.

    python bench/bench_allocator.py [--model pixel-rnn --variant diagonal_bilstm --batch 64 --steps 12]

Runs the same training steps in two fresh subprocesses, with ``PIXLOOM_MALLOC_TUNING=0`` (glibc
defaults) and ``=1`` (what ``pixloom train`` applies), and reports per step: median and spread of
wall time, median process CPU time (user + system) and the minor page faults, which count the
fresh pages the kernel had to hand back to the process (a measure that load on the machine does
not distort). Saves bench/results/allocator.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(args) -> dict:
    import torch

    from pixloom.models import get_model_class
    from pixloom.training.allocator import tune_malloc_for_training

    applied = tune_malloc_for_training()
    torch.set_num_threads(args.threads)
    cls = get_model_class(args.model)
    options = {"variant": args.variant} if args.model == "pixel-rnn" else {}
    torch.manual_seed(0)
    model = cls(cls.config_class(levels=2, **options))
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    images = torch.randint(0, 2, (args.batch, 1, 28, 28), dtype=torch.uint8)
    walls, cpus, faults = [], [], []
    for step in range(args.steps + 2):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        model.loss({"image": images})["loss"].backward()
        optimizer.step()
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        if step >= 2:
            walls.append(wall)
            cpus.append((after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime))
            faults.append(after.ru_minflt - usage.ru_minflt)
    return {
        "tuning_applied": applied,
        "wall_s_median": round(statistics.median(walls), 4), "wall_s_min": round(min(walls), 4),
        "wall_s_max": round(max(walls), 4), "cpu_s_median": round(statistics.median(cpus), 4),
        "minor_faults_median": int(statistics.median(faults)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="pixel-rnn")
    parser.add_argument("--variant", default="diagonal_bilstm")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    rows = {}
    for setting in ("0", "1"):
        env = {**os.environ, "PIXLOOM_MALLOC_TUNING": setting}
        for key in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
            env.pop(key, None)
        command = [sys.executable, __file__, "--child", "--model", args.model, "--variant", args.variant,
                   "--batch", str(args.batch), "--steps", str(args.steps), "--threads", str(args.threads)]
        out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
        rows["tuned" if setting == "1" else "glibc_default"] = json.loads(out.strip().splitlines()[-1])
    for name, r in rows.items():
        print(f"{name:<14} wall {r['wall_s_median']:.3f} s/step (min {r['wall_s_min']:.3f}, max {r['wall_s_max']:.3f})"
              f"  cpu {r['cpu_s_median']:.3f} s/step  minor faults/step {r['minor_faults_median']:,}"
              f"  peak RSS {r['peak_rss_mb']} MB")
    record = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "load_average": os.getloadavg(),
              "model": args.model, "variant": args.variant, "batch": args.batch, "threads": args.threads,
              "steps": args.steps, "results": rows,
              "wall_ratio_default_over_tuned": round(rows["glibc_default"]["wall_s_median"] / rows["tuned"]["wall_s_median"], 3),
              "cpu_ratio_default_over_tuned": round(rows["glibc_default"]["cpu_s_median"] / rows["tuned"]["cpu_s_median"], 3)}
    path = ROOT / "bench" / "results" / "allocator.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)
    print(f"wall ratio default/tuned {record['wall_ratio_default_over_tuned']}, cpu ratio "
          f"{record['cpu_ratio_default_over_tuned']}; saved {path}")


if __name__ == "__main__":
    main()
