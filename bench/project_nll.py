"""Extrapolate a run's validation NLL against training time: when would it reach a goal?

    python bench/project_nll.py runs/mnist-pixelrnn --goal 79.2 --test-offset -0.61 \
        --out bench/results/projection-pixelrnn.json

Fits the best-so-far validation NLL (nats; for latent-variable runs the -ELBO bound) after each
epoch with a power law in training time, NLL(t) = a + b * t^-c, by least squares over a grid of c
(a and b in closed form for each c), once from each of several starting times, because the fit
depends on where it starts. ``--test-offset`` is the measured test minus validation gap
of the run, so the goal on the test split is compared on the same scale. The answer is an
extrapolation from a curve with learning-rate restarts and a shared machine, not a measurement:
read it as "roughly how long", and read the asymptote ``a`` as where this schedule levels off.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path


def best_so_far(run: Path) -> tuple[list[float], list[float]]:
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    key = "valid_nll_nats" if "valid_nll_nats" in rows[0] else "valid_elbo_nats"
    minutes, nll, best = [], [], math.inf
    for row in rows:
        value = float(row[key]) if key == "valid_nll_nats" else -float(row[key])
        best = min(best, value)
        minutes.append(float(row["seconds"]) / 60)
        nll.append(best)
    return minutes, nll


def fit_power_law(t: list[float], y: list[float]) -> dict:
    """Least-squares a + b * t^-c over c in (0, 3]; returns a, b, c and the RMS residual."""
    best = None
    for step in range(1, 301):
        c = step / 100
        x = [ti ** -c for ti in t]
        n, mx, my = len(x), sum(x) / len(x), sum(y) / len(y)
        sxx = sum((xi - mx) ** 2 for xi in x)
        if sxx == 0:
            continue
        b = sum((xi - mx) * (yi - my) for xi, yi in zip(x, y)) / sxx
        a = my - b * mx
        rms = math.sqrt(sum((a + b * xi - yi) ** 2 for xi, yi in zip(x, y)) / n)
        if best is None or rms < best["rms"]:
            best = {"a": a, "b": b, "c": c, "rms": rms}
    return best


def minutes_to_reach(fit: dict, target: float) -> float | None:
    """t with a + b t^-c = target, or None when the fitted curve levels off above the target."""
    if target <= fit["a"] or fit["b"] <= 0:
        return None
    return ((target - fit["a"]) / fit["b"]) ** (-1 / fit["c"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--goal", type=float, required=True, help="goal on the test split (nats)")
    parser.add_argument("--test-offset", type=float, default=0.0,
                        help="measured test NLL minus validation NLL of this run (nats)")
    parser.add_argument("--skip-shares", type=float, nargs="+", default=[0.0, 0.25, 0.5],
                        help="fit from these shares of the training time on (one fit each)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    minutes, nll = best_so_far(args.run)
    valid_goal = args.goal - args.test_offset
    fits = []
    for share in args.skip_shares:  # the fit's sensitivity to where the curve starts
        skip = share * minutes[-1]
        kept = [(t, y) for t, y in zip(minutes, nll) if t >= skip]
        if len(kept) < 3:
            continue
        fit = fit_power_law([t for t, _ in kept], [y for _, y in kept])
        needed = minutes_to_reach(fit, valid_goal)
        fits.append({"from_minute": round(skip, 1), "points": len(kept), **{k: round(v, 4) for k, v in fit.items()},
                     "projected_minutes_to_goal": None if needed is None else round(needed),
                     "projected_valid_at_2x_time": round(fit["a"] + fit["b"] * (2 * minutes[-1]) ** -fit["c"], 3)})
    if not fits:
        raise SystemExit(f"error: {args.run} has too few epochs for a fit (3 needed)")
    result = {"run": str(args.run), "epochs": len(minutes), "trained_minutes": round(minutes[-1], 1),
              "best_valid": round(nll[-1], 3), "goal_test": args.goal, "test_offset": args.test_offset,
              "goal_valid": round(valid_goal, 3), "form": "valid = a + b * minutes^-c", "fits": fits}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
