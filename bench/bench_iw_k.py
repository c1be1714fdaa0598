"""How the importance-weighted (IWAE) estimate of -log p(x) tightens with the number of samples k.

    python bench/bench_iw_k.py mnist-draw --split valid --start 0 --limit 250 --ks 1,10,100,1000 \
        --out bench/results/iw-k-valid-0.json
    python bench/bench_iw_k.py --merge bench/results/iw-k-valid-*.json --out bench/results/iw-k-valid.json \
        --plot docs/img/draw-iw-k.png
    python bench/bench_iw_k.py --compare BASE.json OTHER.json [...] --out compare.json   # models, paired

The same images are scored at every k (paired), so the differences between k are measured far
more precisely than the NLL itself. Each k draws its own samples from ``--seed``. A run can be split
into shards over ``--start`` (one process per core); ``--merge`` joins shards over the k values they all have.
The per-image figures are kept so shards merge exactly.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch


def score(args) -> dict:
    from pixloom.data import load_dataset
    from pixloom import from_pretrained

    model = from_pretrained(args.run)
    model.eval()
    data = load_dataset(args.data, args.split, data_dir=args.data_dir)
    images = data.images[args.start:args.start + args.limit]
    record = {"run": args.run, "data": args.data, "split": args.split, "start": args.start,
              "n_images": len(images), "seed": args.seed, "threads": torch.get_num_threads(),
              "machine": f"{platform.machine()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}",
              "date": datetime.date.today().isoformat(), "per_k": {}}
    for k in [int(v) for v in args.ks.split(",")]:
        torch.manual_seed(args.seed + k)
        started = time.perf_counter()
        nll, elbo = [], []
        for begin in range(0, len(images), args.batch_size):
            out = model.nll(images[begin:begin + args.batch_size], iw_samples=k)
            nll += out["nll_nats"].double().tolist()
            elbo += out["elbo_nats"].double().tolist()
        seconds = time.perf_counter() - started
        record["per_k"][str(k)] = {"nll_nats": nll, "elbo_nats": elbo, "seconds": round(seconds, 1)}
        print(f"k={k}: nll {statistics.fmean(nll):.4f} nats, elbo {statistics.fmean(elbo):.4f} "
              f"({len(nll)} images, {seconds:.0f} s)", flush=True)
    return record


def merge(paths: list[str]) -> dict:
    shards = sorted((json.loads(Path(p).read_text()) for p in paths), key=lambda r: r["start"])
    merged = {key: shards[0][key] for key in ("run", "data", "split", "seed", "machine", "date")}
    merged["start"], merged["n_images"] = shards[0]["start"], sum(s["n_images"] for s in shards)
    merged["shards"], merged["per_k"] = sum(s.get("shards", 1) for s in shards), {}  # a merged file counts its own
    # Shards may differ in their k lists (a resumed run may drop a k to save time): keep the ks all have.
    common = set.intersection(*(set(s["per_k"]) for s in shards))
    for k in sorted(common, key=int):
        merged["per_k"][k] = {
            "nll_nats": [v for s in shards for v in s["per_k"][k]["nll_nats"]],
            "elbo_nats": [v for s in shards for v in s["per_k"][k]["elbo_nats"]],
            "seconds": sum(s["per_k"][k]["seconds"] for s in shards),
        }
    return merged


def summarise(record: dict) -> dict:
    """Mean NLL per k, and each k's gain over the previous one with its standard error (paired)."""
    rows, previous = [], None
    for k, figures in sorted(record["per_k"].items(), key=lambda item: int(item[0])):
        nll = figures["nll_nats"]
        row = {"k": int(k), "nll_nats": statistics.fmean(nll), "elbo_nats": statistics.fmean(figures["elbo_nats"]),
               "seconds": figures["seconds"]}
        if previous is not None:
            gains = [a - b for a, b in zip(previous, nll)]
            row["gain_over_previous_k"] = statistics.fmean(gains)
            row["gain_standard_error"] = statistics.stdev(gains) / math.sqrt(len(gains))
        rows.append(row)
        previous = nll
    return {"n_images": record["n_images"], "rows": rows}


def compare(paths: list[str]) -> dict:
    """Each later model's gain over the first, per k, paired over the same images and seeds."""
    base, *others = (json.loads(Path(p).read_text()) for p in paths)
    result = {"base": base["run"], "split": base["split"], "start": base["start"], "n_images": base["n_images"],
              "models": []}
    for other in others:
        # Each shard reseeds its draws, so a merged file pairs only with one split the same way.
        def scored_on(record):
            return [record[key] for key in ("split", "start", "n_images", "seed")] + [record.get("shards", 1)]

        if scored_on(other) != scored_on(base):
            raise SystemExit(f"{other['run']} was not scored on the same images, seed and shards as {base['run']}")
        for k in sorted(set(base["per_k"]) & set(other["per_k"]), key=int):
            gains = [a - b for a, b in zip(base["per_k"][k]["nll_nats"], other["per_k"][k]["nll_nats"])]
            result["models"].append({"run": other["run"], "k": int(k),
                                     "nll_nats": statistics.fmean(other["per_k"][k]["nll_nats"]),
                                     "elbo_nats": statistics.fmean(other["per_k"][k]["elbo_nats"]),
                                     "gain_over_base": statistics.fmean(gains),
                                     "gain_standard_error": statistics.stdev(gains) / math.sqrt(len(gains))})
    return result


def plot(record: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = record["summary"]["rows"]
    ks = [r["k"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(ks, [r["nll_nats"] for r in rows], "o-", label="IWAE estimate of -log p(x)")
    ax.plot(ks, [-r["elbo_nats"] for r in rows], "s--", color="grey", label="-ELBO (mean log weight)")
    for r in rows:
        ax.annotate(f"{r['nll_nats']:.2f}", (r["k"], r["nll_nats"]), textcoords="offset points", xytext=(4, 6))
    ax.set_xscale("log")
    ax.set_xlabel("importance samples k")
    ax.set_ylabel("nats per image")
    ax.set_title(f"{record['run']}: {record['n_images']} {record['split']} images, paired", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", default="mnist-draw")
    parser.add_argument("--data", default="binarized-mnist")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/data/mnist"))
    parser.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--limit", type=int, default=250)
    parser.add_argument("--ks", default="1,10,100,1000")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--merge", nargs="+", help="join these shard JSON files instead of scoring")
    parser.add_argument("--compare", nargs="+", help="the gain of each later model's JSON over the first, paired")
    parser.add_argument("--out", required=True)
    parser.add_argument("--plot", help="also draw the NLL against k into this PNG")
    args = parser.parse_args()
    if args.compare:
        result = compare(args.compare)
        for row in result["models"]:
            print(f"{row['run']} k={row['k']}: nll {row['nll_nats']:.4f}, gain over {result['base']} "
                  f"{row['gain_over_base']:+.4f} +- {row['gain_standard_error']:.4f}")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        return
    record = merge(args.merge) if args.merge else score(args)
    record["summary"] = summarise(record)
    for row in record["summary"]["rows"]:
        gain = (f", {row['gain_over_previous_k']:+.4f} +- {row['gain_standard_error']:.4f} vs the previous k"
                if "gain_over_previous_k" in row else "")
        print(f"k={row['k']}: nll {row['nll_nats']:.4f} (elbo {row['elbo_nats']:.4f}){gain}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record) + "\n")
    if args.plot:
        plot(record, args.plot)


if __name__ == "__main__":
    import sys

    from pixloom.errors import PixloomError

    try:
        main()
    except PixloomError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)

