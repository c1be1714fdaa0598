"""Binarized-MNIST test NLL after a fixed training budget, with the project's own commands.

    python bench/bench_nll.py row-lstm --minutes 30 --data-dir ../shared/data/mnist
    python bench/bench_nll.py pixel-lstm --minutes 30 --data-dir ../shared/data/mnist --epochs 2

Runs ``pixloom train`` with ``--max-minutes``, then ``pixloom eval --split test`` on the model chosen
on the validation split, and saves the figures and the validation curve to
``bench/results/nll-<model>.json`` (the run directory is ``runs/bench-<model>``).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared/data/mnist"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--tag", default="")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    name = f"{args.model}{'-' + args.tag if args.tag else ''}"
    run = ROOT / "runs" / f"bench-{name}"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    train = [sys.executable, "-m", "pixloom.cli", "train", args.model, "--data", "binarized-mnist",
             "--data-dir", args.data_dir, "--epochs", str(args.epochs), "--max-minutes", str(args.minutes),
             "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--out", str(run), "--quiet"]
    for pair in args.set:
        train += ["--set", pair]
    if args.resume:
        train.append("--resume")
    subprocess.run(train, check=True, env=env)
    evaluate = [sys.executable, "-m", "pixloom.cli", "eval", str(run), "--data", "binarized-mnist",
                "--data-dir", args.data_dir, "--split", "test", "--quiet"]
    result = json.loads(subprocess.run(evaluate, check=True, env=env, capture_output=True, text=True).stdout)
    with open(run / "metrics.csv", newline="") as handle:
        curve = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    train_config = json.loads((run / "train_config.json").read_text())
    record = {
        "model": args.model, "budget_minutes": args.minutes, "threads": args.threads,
        "train_command": " ".join(train[2:]).replace(sys.executable, "python"),
        "n_parameters": train_config.get("n_parameters"),
        "test": result,
        "valid_curve": [{"epoch": r["epoch"], "seconds": r["seconds"], "valid_nll_nats": r["valid_nll_nats"]}
                        for r in curve],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": datetime.date.today().isoformat(),
    }
    out = ROOT / "bench" / "results" / f"nll-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["test"]))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
