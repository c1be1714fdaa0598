"""Exact-likelihood models scored on the same images, with paired differences.

    python bench/bench_paired_nll.py mnist-pixelrnn runs/A runs/B --split valid --out compare.json
    python bench/bench_paired_nll.py mnist-pixelrnn --split train --limit 3000 --rebinarize 5 --out memo.json

The first run is the base: every other run's gain (base NLL - its NLL, in nats per image) is
averaged over the same images with its standard error, which is far smaller than the standard
error of either mean. ``--rebinarize SEED`` also scores every run on a fresh binarization of the
same images (pixel = 1 with probability value/255, drawn from SEED): the fixed binarization of
the training split minus that fresh one is how much binarization noise a model has memorised.
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


def paired(base: list[float], other: list[float]) -> dict:
    """Mean of ``base - other`` and its standard error over the images."""
    gains = [a - b for a, b in zip(base, other)]
    return {"gain": statistics.fmean(gains), "gain_standard_error": statistics.stdev(gains) / math.sqrt(len(gains))}


@torch.no_grad()
def per_image_nll(model, images: torch.Tensor, batch_size: int) -> list[float]:
    nll: list[float] = []
    for begin in range(0, len(images), batch_size):
        nll += model.nll(images[begin:begin + batch_size].to(model.device))["nll_nats"].double().tolist()
    return nll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="saved models; the first is the base")
    parser.add_argument("--data", default="binarized-mnist")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/data/mnist"))
    parser.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--limit", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--rebinarize", type=int, default=None, metavar="SEED",
                        help="also score a fresh binarization of the same images, drawn from SEED")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    from pixloom import from_pretrained
    from pixloom.data import load_dataset
    from pixloom.data.base import binarize
    from pixloom.data.mnist import load_mnist

    data = load_dataset(args.data, args.split, data_dir=args.data_dir)
    stop = args.start + args.limit
    versions = {"fixed": data.images[args.start:stop]}
    if args.rebinarize is not None:
        if not args.data.startswith("binarized-mnist"):
            raise SystemExit(f"--rebinarize draws from the 8-bit MNIST images; it does not apply to --data {args.data}")
        intensities = load_mnist(args.split, args.data_dir).images  # the 8-bit images of the same split
        generator = torch.Generator().manual_seed(args.rebinarize)
        versions["fresh"] = binarize(intensities[args.start:stop], generator)
    record = {"runs": args.runs, "data": args.data, "split": args.split, "start": args.start,
              "n_images": len(versions["fixed"]), "rebinarize_seed": args.rebinarize,
              "machine": f"{platform.machine()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}",
              "date": datetime.date.today().isoformat(), "models": []}
    for run in args.runs:
        model = from_pretrained(run)
        model.eval()
        entry = {"run": run}
        for version, images in versions.items():
            started = time.perf_counter()
            nll = per_image_nll(model, images, args.batch_size)
            entry[version] = {"nll_nats": statistics.fmean(nll), "seconds": round(time.perf_counter() - started, 1),
                              "per_image": nll}
            print(f"{run} ({version} binarization): {statistics.fmean(nll):.4f} nats "
                  f"({len(nll)} images, {entry[version]['seconds']:.0f} s)", flush=True)
        if "fresh" in entry:
            entry["fresh_minus_fixed"] = paired(entry["fresh"]["per_image"], entry["fixed"]["per_image"])
            print(f"  fresh - fixed: {entry['fresh_minus_fixed']['gain']:+.4f} "
                  f"+- {entry['fresh_minus_fixed']['gain_standard_error']:.4f} nats", flush=True)
        record["models"].append(entry)
    base = record["models"][0]
    for entry in record["models"][1:]:
        for version in versions:
            entry[f"gain_over_base_{version}"] = paired(base[version]["per_image"], entry[version]["per_image"])
            print(f"{entry['run']} gain over {base['run']} ({version}): "
                  f"{entry[f'gain_over_base_{version}']['gain']:+.4f} "
                  f"+- {entry[f'gain_over_base_{version}']['gain_standard_error']:.4f} nats", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text(compact_json(record) + "\n")
    tmp.replace(args.out)
    print(f"saved {args.out}")


def compact_json(record: dict) -> str:
    """Indented JSON with each per-image list on one line, so the summary fields stay readable."""
    lists: list[str] = []

    def stash(value):
        if isinstance(value, dict):
            return {key: stash(item) for key, item in value.items()}
        if isinstance(value, list) and value and all(isinstance(item, float) for item in value):
            lists.append(json.dumps(value))
            return f"@@list{len(lists) - 1}@@"
        if isinstance(value, list):
            return [stash(item) for item in value]
        return value

    text = json.dumps(stash(record), indent=1)
    for index, dumped in enumerate(lists):
        text = text.replace(f'"@@list{index}@@"', dumped)
    return text


if __name__ == "__main__":
    main()
