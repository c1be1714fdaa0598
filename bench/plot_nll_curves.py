"""Validation NLL against training time for the runs named on the command line -> one PNG.

    python bench/plot_nll_curves.py docs/img/nll-curves.png runs/bench-row-lstm runs/bench-pixel-lstm
    python bench/plot_nll_curves.py --machine "one H100" docs/img/gpu-finetune-curves.png runs/gpu-pixelrnn ...

Exact-likelihood runs plot their validation NLL; latent-variable runs (which log the ELBO) plot
the negative ELBO, an upper bound on their NLL, and are labelled so.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    args = sys.argv[1:]
    machine = "the shared 2-core CPU"
    if args[:1] == ["--machine"]:
        machine, args = args[1], args[2:]
    out, runs = Path(args[0]), [Path(p) for p in args[1:]]
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=110)
    for run in runs:
        with open(run / "metrics.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        minutes = [float(r["seconds"]) / 60 for r in rows]
        label = run.name.removeprefix("bench-")
        if "valid_nll_nats" in rows[0]:
            nll = [float(r["valid_nll_nats"]) for r in rows]
        else:  # a latent-variable model: -ELBO >= NLL
            nll = [-float(r["valid_elbo_nats"]) for r in rows]
            label += " (-ELBO, a bound)"
        ax.plot(minutes, nll, "o-", label=label)
    # the lower anchor's label goes under its line, so the two stay apart on a wide y range
    for y, name, dy, va in ((79.2, "PixelRNN 79.20 (test, paper)", -2, "top"),
                            (80.97, "DRAW 80.97 (test, paper)", 2, "bottom")):
        ax.axhline(y, color="grey", lw=0.8, ls="--")
        ax.annotate(name, (0.01, y), xycoords=ax.get_yaxis_transform(), xytext=(0, dy),
                    textcoords="offset points", va=va, fontsize=7, color="grey")
    ax.set_xlabel(f"training time on {machine} (minutes)")
    ax.set_ylabel("validation NLL (nats / image)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
