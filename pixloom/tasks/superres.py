"""Super-resolution tasks: upscale pictures with a trained model, and score a model against bicubic on
a folder of ground-truth pictures (Set5, Set14, your own) by the literature's convention."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from pixloom.data.images import read_rgb
from pixloom.data.resize import downscale, upscale_bicubic
from pixloom.errors import ArgumentError, DataError
from pixloom.metrics.image_quality import crop_to_scale, sr_scores
from pixloom.models.capabilities import Upscaler
from pixloom.models.image import ImageModel
from pixloom.tasks.common import ensure_writable_dir, load_model, output_path, require
from pixloom.viz import PICTURE_FORMATS, save_picture


def _upscaler(model, scale, device):
    source = model if isinstance(model, (str, Path)) else None
    model = require(load_model(model, device), Upscaler, source)
    if scale is not None and scale != model.scale:
        raise ArgumentError("scale", f"is {scale}, but this model was trained for x{model.scale}; use a x{scale} model")
    return model


def upscale(model, images, out=None, scale: int | None = None, n: int = 8, seed: int | None = None,
            device: str = "cpu", progress: bool = False):
    """Upscale pictures (paths, PIL images, arrays or tensors). ``out``: with one input a picture file;
    with several a folder, each output keeping its input's file name (paths) or ``upscaled-K.png``.
    Returns the list of uint8 tensors (C, H*s, W*s).

    A digit super-resolver (``row-lstm-sr``) draws ``n`` high-resolution versions of each input
    instead: it returns uint8 levels (B, n, 1, H, W), and ``out`` is one picture with a row per input
    (the input, enlarged | the draws)."""
    model = _upscaler(model, scale, device)
    items = images if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise ArgumentError("images", "is empty: give at least one picture")
    if isinstance(model, ImageModel):
        return _upscale_digits(model, items, out, n, seed)
    targets = []
    if out is not None:
        if len(items) == 1 and Path(out).suffix:
            targets = [output_path(out, "out", tuple(PICTURE_FORMATS))]
        else:
            folder = ensure_writable_dir(Path(out), "out")
            names = [Path(i).name if isinstance(i, (str, Path)) else f"upscaled-{k + 1}.png" for k, i in enumerate(items)]
            if len(set(names)) < len(names):
                raise ArgumentError("images", "have repeated file names; they would overwrite each other in the folder")
            targets = [folder / name for name in names]
            for target in targets:
                if target.suffix.lower() not in PICTURE_FORMATS:
                    raise ArgumentError("images", f"{target.name}: unknown picture format for the output")
    from tqdm.auto import tqdm

    results = []
    for k, item in enumerate(tqdm(items, desc="upscaling", unit="picture", disable=not progress or len(items) < 2)):
        picture = model.upscale([item])[0]
        results.append(picture)
        if targets:
            _save(picture, targets[k])
    return results


def _upscale_digits(model, items, out, n: int, seed: int | None) -> torch.Tensor:
    from pixloom.tasks.common import check_positive_int, make_generator
    from pixloom.viz import save_grid

    n = check_positive_int(n, "n", most=64)
    target = output_path(out, "out", tuple(PICTURE_FORMATS)) if out is not None else None
    low = model._read_low(items) if not isinstance(items[0], torch.Tensor) else torch.cat(
        [model.check_low(i) for i in items])
    draws = model.upscale(low, n=n, generator=make_generator(seed, model.device)).cpu()
    if target is not None:
        enlarged = torch.nn.functional.interpolate(low.cpu(), scale_factor=model.scale, mode="nearest")
        rows = [torch.cat([enlarged[k:k + 1], draws[k].float()]) for k in range(len(low))]
        save_grid(torch.cat(rows), 2, target, nrow=n + 1, scale=3)
    return draws


def _save(picture: torch.Tensor, path: Path) -> None:
    from PIL import Image

    array = picture.permute(1, 2, 0).numpy()
    save_picture(Image.fromarray(array[..., 0] if array.shape[2] == 1 else array), path)


def ground_truth_files(data: str) -> list[Path]:
    if not isinstance(data, str) or not data.startswith("folder:"):
        raise ArgumentError("data", f"super-resolution is scored on a folder of ground-truth pictures "
                            f"(folder:PATH, e.g. Set5), not {data!r}")
    from pixloom.data.folder import image_files

    folder = Path(data[len("folder:"):]).expanduser()
    if not folder.is_dir():
        raise DataError(f"folder not found: {folder}")
    files = image_files(folder)
    if not files:
        raise DataError(f"no pictures in {folder}")
    return files


def evaluate_superres(model, data: str, scale: int | None = None, limit: int | None = None, per_image: bool = False,
                      device: str = "cpu", progress: bool = True, source=None) -> dict:
    """PSNR-Y and SSIM-Y of the model and of bicubic on ground-truth pictures: each is cropped to a
    multiple of the scale, shrunk by bicubic (the input), upscaled, and scored with ``scale`` pixels
    shaved from each border."""
    model = _upscaler(model, scale, device)
    files = ground_truth_files(data)[:limit]
    s = model.scale
    rows = []
    started = time.perf_counter()
    from tqdm.auto import tqdm

    for path in tqdm(files, desc="super-resolution", unit="picture", disable=not progress, leave=False):
        truth = crop_to_scale(read_rgb(path), s)
        if min(truth.shape[:2]) < 4 * s:
            raise DataError(f"{path} is too small for x{s} ({truth.shape[1]}x{truth.shape[0]})")
        hr = torch.from_numpy(np.ascontiguousarray(truth)).permute(2, 0, 1)[None]
        lr = downscale(hr, s)
        bicubic = upscale_bicubic(lr.float(), s).round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
        grey = bool((truth[..., 0] == truth[..., 1]).all() and (truth[..., 1] == truth[..., 2]).all())
        output = model.upscale([lr[0, :1] if grey else lr[0]])[0].permute(1, 2, 0).numpy()
        if grey:
            output = np.repeat(output, 3, axis=2)
        ours, base = sr_scores(output, truth, s), sr_scores(bicubic, truth, s)
        rows.append({"image": path.name, "psnr_y": ours["psnr_y"], "ssim_y": ours["ssim_y"],
                     "bicubic_psnr_y": base["psnr_y"], "bicubic_ssim_y": base["ssim_y"]})
    result = {"model": model.name, "run": None if source is None else str(source), "data": data, "scale": s,
              "n_images": len(rows)}
    for key in ("psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y"):
        result[key] = round(float(np.mean([r[key] for r in rows])), 4)
    result["gain_db"] = round(result["psnr_y"] - result["bicubic_psnr_y"], 4)
    result["seconds"] = round(time.perf_counter() - started, 2)
    if per_image:
        result["per_image"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    return result


def evaluate_digit_sr(model, data: str, split: str = "test", data_dir=None, limit: int | None = None,
                      samples: int = 16, seed: int = 0, batch_size: int = 256, progress: bool = True, source=None) -> dict:
    """A digit super-resolver on a binary image data set: the conditional NLL -log p(x | y) in nats per
    image, the PSNR of one draw and of the mean of ``samples`` draws against the ground truth, and the
    PSNR of bicubic upscaling of y (all on [0, 1] pixels, no border shaved)."""
    from pixloom.data.registry import load_dataset

    dataset = load_dataset(data, split, data_dir=data_dir).subset(limit)
    if dataset.levels != 2:
        raise ArgumentError("data", f"{model.name} is scored on binary images (e.g. binarized-mnist); {data} has "
                            f"{dataset.levels}-level pixels")
    model.check_images(dataset.images[:1])
    generator = torch.Generator(device=model.device).manual_seed(seed)
    totals = {"cond_nll_nats": 0.0, "sample_psnr": 0.0, "mean_psnr": 0.0, "bicubic_psnr": 0.0}
    started = time.perf_counter()
    from tqdm.auto import tqdm

    def psnr(a, b):
        mse = (a.float() - b.float()).pow(2).flatten(1).mean(1).clamp(min=1e-10)
        return 10 * torch.log10(1.0 / mse)

    with torch.no_grad():
        for start in tqdm(range(0, len(dataset), batch_size), desc="digit super-resolution", unit="batch",
                          disable=not progress, leave=False):
            truth = dataset.images[start:start + batch_size].to(model.device)
            low = model.downscale(truth)
            totals["cond_nll_nats"] += float((-model.conditional_log_prob(truth, low)).sum())
            draws = model.sample_given(low, samples, generator=generator).float()  # (B, K, 1, H, W)
            target = truth.float()
            totals["sample_psnr"] += float(psnr(draws[:, 0], target).sum())
            totals["mean_psnr"] += float(psnr(draws.mean(1), target).sum())
            bicubic = upscale_bicubic(low.cpu(), model.scale).clamp(0, 1).to(model.device)
            totals["bicubic_psnr"] += float(psnr(bicubic, target).sum())
    n = len(dataset)
    result = {"model": model.name, "run": None if source is None else str(source), "data": data, "split": split,
              "scale": model.scale, "n_images": n, "samples": samples, "seed": seed}
    result.update({k: round(v / n, 4) for k, v in totals.items()})
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result
