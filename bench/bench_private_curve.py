"""The privacy/quality curve of private generators: test NLL and sample figures against epsilon.

    python bench/bench_private_curve.py runs/dp-gen-none runs/dp-gen-eps1 runs/dp-gen-eps3 runs/dp-gen-eps10 \
        --data-dir ../shared/data/mnist --out bench/results/private-generators.json --plot docs/img/private-curve.png

Each run is scored on the binarized-MNIST test split (exact NLL over all 10,000 images) and by
pixloom.sample_metrics (``-n`` samples against as many test images: Fréchet distance, precision,
recall, class shares). The epsilon of a run is the one its config.json records (``provenance``); a
run without it is the non-private reference, drawn as a horizontal line.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import pixloom
    from pixloom.io import atomic_write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--data", default="binarized-mnist")
    parser.add_argument("--data-dir")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--plot")
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        model = pixloom.from_pretrained(run)
        privacy = (model.provenance or {}).get("privacy")
        scored = pixloom.evaluate(model, args.data, split="test", data_dir=args.data_dir, progress=False)
        figures = pixloom.sample_metrics(model, data=args.data, n=args.n, data_dir=args.data_dir)
        row = {"run": run, "epsilon": privacy["epsilon_spent"] if privacy else None,
               "target_epsilon": privacy["target_epsilon"] if privacy else None,
               "delta": privacy["delta"] if privacy else None, "nll_nats": scored["nll_nats"],
               **{k: figures[k] for k in ("fd", "kid", "precision", "recall", "max_class_share", "min_class_share",
                                          "class_entropy")}}
        rows.append(row)
        print(row, file=sys.stderr)
    atomic_write_json(Path(args.out), {
        "benchmark": "private-generators", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"), "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "command": " ".join(["python", "bench/bench_private_curve.py"] + sys.argv[1:]), "results": rows})
    if args.plot:
        private = sorted((r for r in rows if r["epsilon"] is not None), key=lambda r: r["epsilon"])
        reference = [r for r in rows if r["epsilon"] is None]
        figure, axes = plt.subplots(1, 3, figsize=(12, 3.4))
        for axis, key, label in zip(axes, ("nll_nats", "fd", "min_class_share"),
                                    ("test NLL (nats)", "Fréchet distance", "smallest class share")):
            axis.plot([r["epsilon"] for r in private], [r[key] for r in private], "o-", label="DP-SGD")
            for r in reference:
                axis.axhline(r[key], color="gray", linestyle="--", label="no privacy")
            axis.set_xscale("log")
            axis.set_xlabel("epsilon spent (delta 1e-5)")
            axis.set_title(label)
        axes[0].legend()
        figure.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.plot, dpi=90)


if __name__ == "__main__":
    main()
