"""Super-resolution figures: PSNR-Y / SSIM-Y on Set5 and Set14 beside bicubic, speed, memory.

    python bench/bench_superres.py quality RUN [RUN ...] --sets ../shared/data/sr/Set5 ../shared/data/sr/Set14 \
        --out bench/results/superres-quality.json
    python bench/bench_superres.py speed RUN [RUN ...] --out bench/results/superres-speed.json
    python bench/bench_superres.py memory RUN --side 2048 --out bench/results/superres-memory.json
    python bench/bench_superres.py digits RUN --data-dir ../shared/data/mnist --out bench/results/superres-digits.json
    python bench/bench_superres.py figures PHOTO_RUN DIGIT_RUN --out docs/img    (crops and draws for the docs)
    python bench/bench_superres.py recursions photo-sr-x2 --out bench/results/superres-recursions.json

``quality`` scores each model (a run directory or a shipped name) on each folder by the literature's
convention (pixloom.metrics.image_quality), bicubic on the same images beside it. ``speed`` times, in
one process so that the ratios are fair on a shared machine: upscaling a 512x512 picture, and training
steps of 16 patches (images/s), for every model given. ``memory`` upscales one random SIDE x SIDE
picture in a fresh process per tile size and reports the peak resident memory.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def stamp() -> dict:
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
            "command": " ".join(["python", "bench/bench_superres.py"] + sys.argv[1:])}


def quality(runs: list[str], sets: list[str]) -> dict:
    import pixloom

    out = {}
    for run in runs:
        for folder in sets:
            result = pixloom.evaluate(run, f"folder:{folder}", per_image=True, progress=False)
            key = f"{run} | {Path(folder).name}"
            out[key] = result
            print(f"{key}: x{result['scale']} PSNR-Y {result['psnr_y']:.2f} (bicubic {result['bicubic_psnr_y']:.2f}), "
                  f"SSIM-Y {result['ssim_y']:.4f} (bicubic {result['bicubic_ssim_y']:.4f})", file=sys.stderr)
    return out


def upscale_times(model, picture, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` upscalings of ``picture``, after a small warm-up."""
    model.upscale(picture[:, :64, :64])
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.upscale(picture)
        times.append(time.perf_counter() - started)
    return times


def speed(runs: list[str], repeats: int = 3) -> dict:
    import numpy as np
    import torch

    import pixloom

    rng = np.random.default_rng(0)
    picture = torch.from_numpy(rng.integers(0, 256, (3, 512, 512), dtype=np.uint8))
    out = {}
    for run in runs:
        model = pixloom.from_pretrained(run)
        times = upscale_times(model, picture, repeats)
        model.train()
        patch = model.config.patch_size
        batch = {"lr": torch.from_numpy(rng.integers(0, 256, (16, 1, patch, patch), dtype=np.uint8)),
                 "hr": torch.from_numpy(rng.integers(0, 256, (16, 1, patch * model.scale, patch * model.scale),
                                                     dtype=np.uint8))}
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)
        steps = []
        for _ in range(repeats + 1):
            started = time.perf_counter()
            optimizer.zero_grad()
            model.loss(batch)["loss"].backward()
            optimizer.step()
            steps.append(time.perf_counter() - started)
        out[run] = {"model": model.name, "scale": model.scale, "parameters": model.num_parameters(),
                    "config": {k: v for k, v in vars(model.config).items()},
                    "upscale_512_seconds": round(min(times), 3), "upscale_512_all": [round(t, 3) for t in times],
                    "train_patches_per_second": round(16 / min(steps[1:]), 1),
                    "train_patch_lr_side": patch}
        print(f"{run}: 512x512 x{model.scale} in {min(times):.2f} s, training {16 / min(steps[1:]):.0f} patches/s",
              file=sys.stderr)
    return out


def recursions(run: str, counts: list[int], sets: list[str], repeats: int = 3) -> dict:
    """A recursive model run with fewer recursions than it was trained with (its weights are shared, so
    any T works): PSNR-Y on each set and seconds per 512x512 input, for each T."""
    import numpy as np
    import torch

    import pixloom

    model = pixloom.from_pretrained(run)
    picture = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 512, 512), dtype=np.uint8))
    trained = model.config.recursions
    out = {"trained_recursions": trained}
    for count in counts:
        model.config.recursions = count
        times = upscale_times(model, picture, repeats)
        row = {"upscale_512_seconds": round(min(times), 3)}
        for folder in sets:
            row[f"psnr_y {Path(folder).name}"] = pixloom.evaluate(model, f"folder:{folder}", progress=False)["psnr_y"]
        out[str(count)] = row
        print(f"T = {count}: {row}", file=sys.stderr)
    model.config.recursions = trained
    return out


MEMORY_CHILD = """
import resource, sys, time, numpy as np, torch
import pixloom
model = pixloom.from_pretrained(sys.argv[1])
model.tile = int(sys.argv[3])
side = int(sys.argv[2])
picture = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, side, side), dtype=np.uint8))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
out = model.upscale(picture)[0]
print(out.shape[1], out.shape[2], before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - started)
"""


def memory(run: str, side: int, tiles: list[int]) -> dict:
    out = {}
    for tile in tiles:
        done = subprocess.run([sys.executable, "-c", MEMORY_CHILD, run, str(side), str(tile)], capture_output=True,
                              text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        h, w, before, peak, seconds = done.stdout.split()
        out[str(tile)] = {"output": f"{w}x{h}", "peak_rss_mb": round(int(peak) / 1024, 1),
                          "rss_before_upscale_mb": round(int(before) / 1024, 1), "seconds": round(float(seconds), 1)}
        print(f"tile {tile}: {w}x{h} output, peak RSS {int(peak) / 1024:.0f} MB, {float(seconds):.1f} s", file=sys.stderr)
    return out


def digits(runs: list[str], data_dir: str | None) -> dict:
    import pixloom

    out = {}
    for run in runs:
        out[run] = pixloom.evaluate(run, "binarized-mnist", split="test", data_dir=data_dir, progress=False)
        print(f"{run}: {out[run]}", file=sys.stderr)
    return out


def figures(photo_run: str, digit_run: str, folder: Path, set_dir: Path) -> dict:
    """docs pictures: crops of bicubic | model | ground truth from Set5/Set14 pictures, and several
    high-resolution draws of digits from their 7x7 versions."""
    import numpy as np
    import torch
    from PIL import Image

    import pixloom
    from pixloom.data.images import read_rgb
    from pixloom.data.resize import downscale, upscale_bicubic
    from pixloom.metrics.image_quality import crop_to_scale

    folder.mkdir(parents=True, exist_ok=True)
    model = pixloom.from_pretrained(photo_run)
    s = model.scale
    rows = []
    for name, (top, left, size) in {"butterfly.png": (60, 60, 96), "zebra.png": (150, 250, 96),
                                    "comic.png": (120, 60, 96)}.items():
        path = next(p for p in set_dir.rglob(name))
        truth = crop_to_scale(read_rgb(path), s)
        hr = torch.from_numpy(np.ascontiguousarray(truth)).permute(2, 0, 1)[None]
        lr = downscale(hr, s)
        bicubic = upscale_bicubic(lr.float(), s).round().clamp(0, 255).byte()[0].permute(1, 2, 0).numpy()
        ours = model.upscale(lr[0])[0].permute(1, 2, 0).numpy()
        crops = [a[top:top + size, left:left + size] for a in (bicubic, ours, truth)]
        rows.append(np.concatenate([np.pad(c, ((2, 2), (2, 2), (0, 0)), constant_values=255) for c in crops], 1))
    picture = Image.fromarray(np.concatenate(rows, 0)).resize((3 * (96 + 4) * 2, len(rows) * (96 + 4) * 2),
                                                              Image.NEAREST)
    picture.save(folder / f"superres-x{s}-crops.png")
    digits_model = pixloom.from_pretrained(digit_run)
    truth = pixloom.load_dataset("sample-binarized", "test").images[:6]
    low = digits_model.downscale(truth)
    draws = digits_model.upscale(low, n=6, generator=torch.Generator().manual_seed(0)).float()
    enlarged = torch.nn.functional.interpolate(low, scale_factor=digits_model.scale, mode="nearest")
    grid = torch.cat([torch.cat([enlarged[k:k + 1], draws[k], truth[k:k + 1].float()]) for k in range(6)])
    from pixloom.viz import save_grid

    save_grid(grid, 2, folder / "superres-digits-draws.png", nrow=8, scale=3)
    return {"crops": f"superres-x{s}-crops.png", "draws": "superres-digits-draws.png"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["quality", "speed", "memory", "digits", "figures", "recursions"])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--sets", nargs="+", default=[str(ROOT.parent / "shared/data/sr/Set5"),
                                                      str(ROOT.parent / "shared/data/sr/Set14")])
    parser.add_argument("--side", type=int, default=2048, help="memory: input side (2048 at x2 -> 4096 output)")
    parser.add_argument("--tiles", type=int, nargs="+", default=[64, 128, 256], help="memory: tile sides to try")
    parser.add_argument("--data-dir", help="digits: the MNIST folder")
    parser.add_argument("--counts", type=int, nargs="+", default=[8, 6, 4, 3, 2, 1], help="recursions: the T to try")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.what == "quality":
        result = quality(args.runs, args.sets)
    elif args.what == "speed":
        result = speed(args.runs)
    elif args.what == "recursions":
        result = recursions(args.runs[0], args.counts, args.sets)
    elif args.what == "digits":
        result = digits(args.runs, args.data_dir)
    elif args.what == "figures":
        print(figures(args.runs[0], args.runs[1], Path(args.out), Path(args.sets[0]).parent))
        return
    else:
        result = memory(args.runs[0], args.side, args.tiles)
    from pixloom.io import atomic_write_json

    atomic_write_json(args.out, {"benchmark": f"superres-{args.what}", **stamp(), "results": result,
                                 "max_rss_of_bench_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})


if __name__ == "__main__":
    main()
