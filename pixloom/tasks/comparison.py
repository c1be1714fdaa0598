"""``pixloom compare``: one table over generators (likelihood where a model has one, and the sample
figures of :mod:`pixloom.tasks.sample_quality`), as Markdown and as an HTML page with the sample grids."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import torch

from pixloom.errors import ArgumentError, PixloomError
from pixloom.models.capabilities import Likelihood, Sampler
from pixloom.models.image import ImageModel
from pixloom.tasks.common import load_model, output_path
from pixloom.tasks.sample_quality import DEFAULT_CLASSIFIER, load_classifier, real_floor, real_images, sample_metrics


# -- the comparison report ----------------------------------------------------------------------------------
COLUMNS = [("nll_nats", "NLL (nats)", "{:.2f}"), ("fd", "FD", "{:.2f}"), ("kid", "KID", "{:.4f}"),
           ("precision", "precision", "{:.3f}"), ("recall", "recall", "{:.3f}"),
           ("max_class_share", "max class share", "{:.3f}"), ("class_entropy", "class entropy", "{:.3f}"),
           ("label_accuracy", "label acc.", "{:.3f}"), ("tstr_accuracy", "TSTR acc.", "{:.3f}"),
           ("samples_per_second", "samples/s", "{:.0f}"),
           ("parameters", "parameters", "{:,}"), ("train_minutes", "training (min)", "{:.0f}")]


def _cell(row: dict, key: str, fmt: str) -> str:
    if key not in row or row[key] is None:
        return "-"
    value = fmt.format(row[key])
    if key + "_std" in row:
        value += f" ± {fmt.format(row[key + '_std'])}" if key != "samples_per_second" else ""
    return value


def _training_minutes(run) -> float | None:
    import csv

    from pixloom.models.hub import resolve_model_dir

    try:
        path = resolve_model_dir(run) / "metrics.csv"
    except PixloomError:
        return None
    if not path.is_file():
        return None
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return float(rows[-1]["seconds"]) / 60 if rows and "seconds" in rows[-1] else None


def compare(runs, data: str = "binarized-mnist", out="report.md", n: int = 10000, seeds=(0, 1, 2),
            classifier=DEFAULT_CLASSIFIER, data_dir=None, nll_limit: int | None = 1000, grid: int = 36,
            progress: bool = True) -> dict:
    """One table over generators: NLL (or its bound) where the model has one, and the sample metrics;
    ``out`` (.md) gets the table and, beside it (.html), the table with a grid of samples per model."""
    from pixloom.tasks.evaluation import evaluate
    from pixloom.viz import to_pil_grid

    if isinstance(runs, (str, Path)) or not runs:
        raise ArgumentError("runs", "must list at least one generator")
    out = output_path(out, "out", (".md",))
    models = []
    for run in runs:  # everything is checked before any work
        model = load_model(run)
        if not isinstance(model, Sampler):
            raise PixloomError(f"'{run}' is a {model.name} model, which does not generate images")
        models.append((run, model))
    classifier_model = load_classifier(classifier)
    real = real_images(data, "test", n, data_dir)
    for run, model in models:
        if isinstance(model, ImageModel) and tuple(real[0].shape[1:]) != model.image_shape:
            raise ArgumentError("data", f"{data} holds {tuple(real[0].shape[1:])} images; '{run}' makes "
                                f"{model.image_shape}")
    rows, grids = [], {}
    from tqdm.auto import tqdm

    for run, model in tqdm(models, desc="generators", unit="model", disable=not progress):
        row = {"run": str(run), "model": model.name, "parameters": model.num_parameters(),
               "train_minutes": _training_minutes(run)}
        if isinstance(model, Likelihood) and nll_limit:
            scored = evaluate(model, data, split="test", data_dir=data_dir, limit=nll_limit, progress=False)
            row["nll_nats"] = scored["nll_nats"]
        figures = sample_metrics(model, data, n=n, seeds=tuple(seeds), classifier=classifier_model,
                                 data_dir=data_dir, real=real)
        row.update({k: v for k, v in figures.items() if k not in ("run", "model")})
        rows.append(row)
        picture = to_pil_grid(model.sample(grid, generator=torch.Generator().manual_seed(0)).cpu(),
                              model.config.levels, nrow=int(math.sqrt(grid)), scale=2)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        grids[str(run)] = base64.b64encode(buffer.getvalue()).decode("ascii")
    floor = real_floor(data, n=n, classifier=classifier_model, data_dir=data_dir)
    rows.append({**{k: v for k, v in floor.items() if k not in ("data", "n_samples")}, "run": "(the floor)"})
    table = _markdown(rows, data, n, seeds)
    from pixloom.io import atomic_write_text

    atomic_write_text(out, table)
    atomic_write_text(out.with_suffix(".html"), _html(table, rows, grids))
    return {"report": str(out), "html": str(out.with_suffix(".html")), "rows": rows}


def _markdown(rows, data, n, seeds) -> str:
    present = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    lines = [f"# Generators compared on {data}", "",
             f"{n:,} samples per model and seed (seeds {', '.join(map(str, seeds))}), against {n:,} test images; "
             "the figures are means over the seeds, ± their standard deviation. NLL: on the first test images "
             "(IWAE estimate with K = 100 for latent models). The last row, real training images against the "
             "same test images, is the best a generator can reach at this sample count.", "",
             "| model | run | " + " | ".join(c[1] for c in present) + " |",
             "|---|---|" + "---|" * len(present)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['run']} | " + " | ".join(_cell(r, k, f) for k, _, f in present) + " |")
    return "\n".join(lines) + "\n"


def _html(table: str, rows, grids) -> str:
    import html as escape

    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>pixloom comparison</title>",
             "<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em}"
             "figure{display:inline-block;margin:1em;text-align:center}</style></head><body>",
             f"<pre>{escape.escape(table)}</pre>"]
    for r in rows:
        if r["run"] not in grids:
            continue
        parts.append(f"<figure><img src='data:image/png;base64,{grids[r['run']]}' alt='samples of {escape.escape(r['run'])}'>"
                     f"<figcaption>{escape.escape(r['model'])}: {escape.escape(r['run'])}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
