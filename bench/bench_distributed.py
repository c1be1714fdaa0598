"""Training throughput on one machine's cores: one process with T threads against torchrun processes.

    python bench/bench_distributed.py --model pixel-rnn --set variant=diagonal_bilstm --batch-size 32 \
        --steps 60 --out bench/results/distributed.json

Runs ``pixloom train`` on the embedded binarized sample, each layout in a fresh run directory:
1 process x 1 thread, 1 process x N threads, and ``torchrun`` with N processes x 1 thread (N =
``--cores``). Images/s come from the run's own ``train_log.csv`` (training time only, start-up and
validation excluded), between the first logged row and the last, so the first steps' warm-up is
left out. Same global batch in every layout.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_layout(processes: int, threads: int, args, workdir: Path) -> dict:
    out = workdir / f"p{processes}-t{threads}"
    train = ["-m", "pixloom", "train", args.model, "--data", "sample-binarized", "--batch-size", str(args.batch_size),
             "--max-steps", str(args.steps), "--epochs", "100", "--device", "cpu", "--quiet", "--out", str(out)]
    for option in args.set:
        train += ["--set", option]
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(launcher + train, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"error: {processes} x {threads} failed:\n{done.stderr[-2000:]}")
    with open(out / "train_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    first, last = rows[0], rows[-1]
    images = (int(last["step"]) - int(first["step"])) * args.batch_size
    seconds = float(last["seconds"]) - float(first["seconds"])
    return {"processes": processes, "threads_each": threads, "images_per_s": round(images / seconds, 1),
            "timed_steps": int(last["step"]) - int(first["step"]), "wall_s": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pixel-rnn")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60, help="steps per layout (rows are logged every 20)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    layouts = [(1, 1), (1, args.cores), (args.cores, 1)]
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_layout(p, t, args, Path(tmp)) for p, t in layouts]
    base = results[0]["images_per_s"]
    for r in results:
        r["speed_vs_1x1"] = round(r["images_per_s"] / base, 2)
        print(f"{r['processes']} process(es) x {r['threads_each']} thread(s): {r['images_per_s']} images/s "
              f"({r['speed_vs_1x1']}x)")
    report = {"model": args.model, "set": args.set, "batch_size": args.batch_size, "steps": args.steps,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_average": os.getloadavg(),
              "date": time.strftime("%Y-%m-%d"), "results": results}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
