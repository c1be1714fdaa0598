"""Image captioning on Flickr8k: dev metrics, training time and caption throughput of a trained run.

    python bench/bench_caption.py runs/caption-sat --data-dir ../shared/data/flickr8k \
        --cache-dir runs/features --threads 2 --eval
    python bench/bench_caption.py runs/ensemble --members runs/sat-a runs/sat-b --eval ...   # an ensemble

Reads the run's training command and time (``train_config.json``, ``metrics.csv``), optionally runs
``pixloom eval RUN --data flickr8k --split dev --beam 3`` (COCO metrics through pycocoevalcap), and
measures caption throughput from JPEG files with beam 3, the encoder included (read, resize,
EfficientNet-Lite0, beam search), on ``--threads`` CPU threads. Writes
``bench/results/caption.json`` (one entry per run, keyed by the run's model name).
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_summary(run: Path) -> dict:
    config = json.loads((run / "train_config.json").read_text())
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    if "valid_bleu4" in rows[0]:  # chosen on dev BLEU-4
        best = max(rows, key=lambda r: float(r["valid_bleu4"]))
    else:
        best = min(rows, key=lambda r: float(r["valid_loss"]))
    return {"best_valid_bleu4": float(best["valid_bleu4"]) if "valid_bleu4" in best else None,
            "command": config.get("command"), "train_seconds": float(rows[-1]["seconds"]),
            "epochs_done": float(rows[-1]["epoch"]), "steps": int(rows[-1]["step"]),
            "best_valid_loss": float(best["valid_loss"]), "best_epoch": float(best["epoch"]),
            "train_threads": config.get("threads"), "n_parameters": config.get("n_parameters"),
            "vocab_size": config.get("vocab_size"), "train_pairs": config.get("train_pairs"),
            "batch_size": config["train"]["batch_size"], "lr": config["train"]["lr"]}


def throughput(run: str, data_dir: str, n: int, beam: int, batch: int, threads: int,
               length_penalty: float | None = None) -> dict:
    import torch

    import pixloom

    torch.set_num_threads(threads)
    model = pixloom.from_pretrained(run)
    if length_penalty is None:
        length_penalty = model.config.length_penalty
    data = pixloom.load_dataset("flickr8k", "dev", data_dir).subset(n)
    paths = [str(p) for p in data.image_paths]
    model.caption(paths[:2], beam=beam)  # warm-up: builds the encoder
    started = time.perf_counter()
    for start in range(0, len(paths), batch):
        model.caption(paths[start:start + batch], beam=beam, length_penalty=length_penalty)
    seconds = time.perf_counter() - started
    return {"images": len(paths), "beam": beam, "length_penalty": length_penalty, "batch_size": batch, "threads": threads,
            "seconds": round(seconds, 2), "images_per_second": round(len(paths) / seconds, 2),
            "includes": "JPEG read + resize to 224 + EfficientNet-Lite0 + beam search",
            "load_average_1min_at_start": os.getloadavg()[0]}


def examples(run: str, data_dir: str, n: int, beam: int, image_dir: Path, attention_index: int,
             length_penalty: float | None = None) -> dict:
    """``n`` dev images (every 100th) with generated and reference captions, small copies of the
    photos and one attention map, for docs/captioning.md."""
    from PIL import Image

    import pixloom
    from pixloom.viz import attention_figure

    model = pixloom.from_pretrained(run)
    data = pixloom.load_dataset("flickr8k", "dev", data_dir)
    picks = list(range(0, len(data), max(1, len(data) // n)))[:n]
    paths = [str(data.image_paths[k]) for k in picks]
    images = model.prepare_images(paths)
    decoded = model.decode(images, beam=beam, length_penalty=length_penalty)
    captions = [model.vocab.decode(t) for t in decoded.tokens]
    image_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for j, k in enumerate(picks):
        thumb = image_dir / f"caption-dev-{j + 1:02d}.jpg"
        Image.open(data.image_paths[k]).convert("RGB").resize((160, 160)).save(thumb, quality=85)
        rows.append({"image": data.image_ids[k], "thumbnail": thumb.name, "generated": captions[j],
                     "references": data.captions[k]})
    attention = None
    if model.has_attention:
        j = attention_index
        words = model.vocab.decode_ids(decoded.tokens[j])
        small = torch_resize(images[j], 160)
        path = attention_figure(small, words, decoded.attention[j], image_dir / "caption-attention.png")
        attention = {"image": rows[j]["image"], "caption": captions[j], "file": path.name}
    return {"examples": rows, "attention_map": attention}


def torch_resize(image, size: int):
    import torch

    return torch.nn.functional.interpolate(image[None].float(), size=(size, size), mode="bilinear",
                                           align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", help="the training run (for its command, time and curves)")
    parser.add_argument("--model", help="model to evaluate and time, e.g. the shipped flickr8k-captioner "
                                        "(default: the run itself)")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared/data/flickr8k"))
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=100, help="dev images for the throughput figure")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--length-penalty", type=float, default=None, help="default: the model's own")
    parser.add_argument("--members", nargs="+", help="for an ensemble: the training runs of its members")
    parser.add_argument("--eval", action="store_true", help="also run pixloom eval on the dev split")
    parser.add_argument("--examples", type=int, default=0, help="also caption N dev images for the docs")
    parser.add_argument("--attention-index", type=int, default=0, help="which example gets the attention map")
    parser.add_argument("--image-dir", default=str(ROOT / "docs/img"))
    parser.add_argument("--out", default=str(ROOT / "bench/results/caption.json"))
    args = parser.parse_args()
    run = Path(args.run)
    from pixloom.models.hub import resolve_model_dir

    model_dir = resolve_model_dir(args.model or args.run)
    entry = {"run": str(run), "model": str(args.model or run),
             "model_bytes": sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file()), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "platform": platform.platform(), "cpu_count": os.cpu_count(), "training": ([train_summary(Path(m)) for m in args.members] if args.members
                                                    else train_summary(run))}
    if args.cache_dir:
        entry["feature_cache"] = [
            {k: meta[k] for k in ("encoder", "data", "split", "n_images", "seconds", "threads") if k in meta}
            for meta in (json.loads(p.read_text()) for p in sorted(Path(args.cache_dir).glob("*.json")))]
    if args.eval:
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        command = [sys.executable, "-m", "pixloom.cli", "eval", str(args.model or run), "--data", "flickr8k", "--data-dir",
                   args.data_dir, "--split", "dev", "--beam", str(args.beam), "--quiet"]
        if args.length_penalty is not None:
            command += ["--length-penalty", str(args.length_penalty)]
        if args.cache_dir:
            command += ["--cache-dir", args.cache_dir]
        result = subprocess.run(command, check=True, env=env, capture_output=True, text=True)
        entry["dev_metrics"] = json.loads(result.stdout)
        entry["eval_command"] = " ".join(["pixloom"] + command[3:])
    if args.examples:
        entry["docs_examples"] = examples(str(args.model or run), args.data_dir, args.examples, args.beam, Path(args.image_dir),
                                          args.attention_index, args.length_penalty)
    entry["throughput"] = throughput(str(args.model or run), args.data_dir, args.images, args.beam, args.batch, args.threads,
                                     args.length_penalty)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.setdefault("benchmark", "Flickr8k captioning: dev COCO metrics (pycocoevalcap), CPU training time, "
                                    "caption throughput")
    model = json.loads((run / "config.json").read_text())["model"]
    results.setdefault("runs", {})[model] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
