"""Generation tasks: sample new images, complete partly hidden ones, reconstruct and interpolate
through a latent space, and show a canvas being drawn. Each takes a model object, a run directory or
a shipped name, checks what it is given before any work, and can write the picture it makes."""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np
import torch

from pixloom.data.registry import load_dataset
from pixloom.errors import ArgumentError
from pixloom.io import atomic_write_bytes
from pixloom.models.capabilities import Autoencoder, CanvasSampler, Completer, Sampler
from pixloom.models.image import ImageModel, check_temperature, known_rows_mask
from pixloom.tasks.common import check_positive_int, check_seed, load_model, make_generator, output_path, require
from pixloom.viz import PICTURE_FORMATS, canvas_figures, completion_figure, save_grid, to_unit

MAX_GRID = 1024  # images in one picture; more samples go to an .npz file
MAX_SAMPLES = 1_000_000
SAMPLE_BATCH = 256


def _model(model, capability, device):
    source = model if isinstance(model, (str, Path)) else None
    return require(load_model(model, device), capability, source)


def _label(model: ImageModel, label, n: int):
    if label is None:
        return None
    return model.check_label(torch.as_tensor(label), n)


def sample(model, n: int = 64, temperature: float = 1.0, label=None, seed: int | None = None,
           out=None, nrow: int | None = None, steps_out=None, batch_size: int = SAMPLE_BATCH,
           device: str = "cpu", progress: bool = False) -> torch.Tensor:
    """``n`` new images (uint8 levels, (n, C, H, W)), drawn ``batch_size`` at a time so memory stays
    bounded. ``out``: a picture of the grid (.png, .jpg, ...; at most 1,024 images) or an ``.npz``
    file with every image (``images``, and ``labels`` for conditional models). ``steps_out``: for a
    model that draws in steps (DRAW), an animated GIF of the canvas (and a PNG strip beside it)
    showing the same draws as ``out``. ``label``: the class to draw (conditional models)."""
    model = _model(model, Sampler, device)
    n = check_positive_int(n, "n", most=MAX_SAMPLES)
    temperature = check_temperature(temperature)
    batch_size = check_positive_int(batch_size, "batch_size")
    seed = check_seed(seed)
    if out is not None:
        out = output_path(out, "out", tuple(PICTURE_FORMATS) + (".npz",))
        if out.suffix.lower() != ".npz" and n > MAX_GRID:
            raise ArgumentError("n", f"is {n:,}: a picture holds at most {MAX_GRID:,} images; write them to an .npz "
                                "file instead")
    if nrow is not None:
        check_positive_int(nrow, "nrow")
    if steps_out is not None:
        if not isinstance(model, CanvasSampler):
            raise ArgumentError("steps_out", f"needs a model that draws in steps (draw); {model.name} does not")
        steps_out = output_path(steps_out, "steps_out", (".gif",))
        if n > 256:
            raise ArgumentError("n", f"is {n:,}: the canvas animation shows at most 256 pictures")
    labels = _label(model, label, n) if isinstance(model, ImageModel) else label
    if seed is None and steps_out is not None:
        seed = secrets.randbits(62)  # the grid and the canvas must show the same draws
    images = _draw_in_batches(model, n, temperature, labels, seed, batch_size, progress)
    if out is not None:
        if out.suffix.lower() == ".npz":
            _write_npz(out, images, labels)
        else:
            save_grid(images, model.config.levels, out, nrow=nrow or min(8, n), scale=3)
    if steps_out is not None:
        canvases = model.canvas_steps(n, generator=make_generator(seed, model.device))
        canvas_figures(canvases, steps_out, nrow=nrow or min(8, n))
    return images


def _draw_in_batches(model, n, temperature, labels, seed, batch_size, progress) -> torch.Tensor:
    from tqdm.auto import tqdm

    generator = make_generator(seed, model.device)
    parts = []
    with tqdm(total=n, desc="sampling", unit="img", disable=not progress or n <= batch_size, leave=False) as bar:
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            part_labels = None if labels is None else labels[start:start + size]
            parts.append(model.sample(size, temperature=temperature, label=part_labels, generator=generator).cpu())
            bar.update(size)
    return torch.cat(parts)


def _write_npz(path: Path, images: torch.Tensor, labels) -> None:
    import io

    arrays = {"images": images.numpy().astype(np.uint8)}
    if labels is not None:
        arrays["labels"] = labels.cpu().numpy().astype(np.int64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def complete(model, images, known_rows: int | None = None, mask=None, n: int = 8, temperature: float = 1.0,
             label=None, seed: int | None = None, out=None, device: str = "cpu") -> torch.Tensor:
    """``n`` completions of each image (image files, PIL images or uint8 level tensors): keep its top
    ``known_rows`` rows (or the pixels where ``mask`` is True) and sample the rest. Returns uint8
    (B, n, C, H, W); ``out`` writes a figure: occluded input | completions | original."""
    model = _model(model, Completer, device)
    n = check_positive_int(n, "n", most=MAX_GRID)
    temperature = check_temperature(temperature)
    if out is not None:
        out = output_path(out, "out", tuple(PICTURE_FORMATS))
    originals = model.prepare_images(images)
    if known_rows is not None:
        known = known_rows_mask(model.image_shape, known_rows)
    elif mask is not None:
        known = model.known_pixels(originals, None, mask).cpu()
    else:
        raise ArgumentError("known_rows", "or mask: give one of the two")
    b = originals.shape[0]
    labels = _label(model, label, b)
    batch = originals.repeat_interleave(n, 0)
    batch_mask = None if mask is None else (known if known.dim() == 3 else known.repeat_interleave(n, 0))
    completions = model.complete(batch, known_rows=known_rows, mask=batch_mask, temperature=temperature,
                                 label=None if labels is None else labels.repeat_interleave(n),
                                 generator=make_generator(seed, model.device))
    completions = completions.view(b, n, *model.image_shape).cpu()
    if out is not None:
        completion_figure(originals.cpu(), known.cpu(), completions, model.config.levels, out)
    return completions


def dataset_images(model: ImageModel, data: str, split: str, count: int, data_dir=None) -> torch.Tensor:
    """The first ``count`` images of a data split as uint8 levels, checked against ``model``."""
    dataset = load_dataset(data, split, data_dir=data_dir)
    if len(dataset) < count:
        raise ArgumentError("data", f"{data} ({split}) holds {len(dataset)} images, fewer than the {count} asked for")
    if dataset.levels != model.config.levels:
        raise ArgumentError("data", f"has {dataset.levels}-level pixels but the model was trained on "
                            f"{model.config.levels}-level pixels")
    return model.check_images(dataset.images[:count])


def reconstruct(model, images=None, data: str | None = None, split: str = "valid", n: int = 16, data_dir=None,
                out=None, device: str = "cpu") -> torch.Tensor:
    """decode(encode(x)) for ``images`` (or the first ``n`` images of a data split): floats in [0, 1].
    ``out``: a picture with the originals on the top row, reconstructions below."""
    model = _model(model, Autoencoder, device)
    if out is not None:
        out = output_path(out, "out", tuple(PICTURE_FORMATS))
    if (images is None) == (data is None):
        raise ArgumentError("images", "or data: give exactly one of the two")
    if images is None:
        images = dataset_images(model, data, split, check_positive_int(n, "n", most=MAX_GRID), data_dir)
    else:
        images = model.prepare_images(images)
    rebuilt = model.reconstruct(images).cpu()
    if out is not None:
        levels = model.config.levels
        save_grid(torch.cat([to_unit(images, levels), rebuilt]), levels, out, nrow=len(images), scale=3)
    return rebuilt


def interpolate(model, first, second, steps: int = 10, out=None, device: str = "cpu") -> torch.Tensor:
    """Decoded points on the straight line between the latents of two images, (steps, C, H, W)
    floats in [0, 1]. ``out``: a strip first | steps | second."""
    model = _model(model, Autoencoder, device)
    steps = check_positive_int(steps, "steps", least=2, most=MAX_GRID)
    if out is not None:
        out = output_path(out, "out", tuple(PICTURE_FORMATS))
    a, b = model.prepare_images(first)[:1], model.prepare_images(second)[:1]
    path = model.interpolate(a[0], b[0], steps=steps).cpu()
    if out is not None:
        levels = model.config.levels
        strip = torch.cat([to_unit(a, levels), path, to_unit(b, levels)])
        save_grid(strip, levels, out, nrow=len(strip), scale=3)
    return path


def canvas(model, n: int = 16, seed: int | None = None, out=None, nrow: int | None = None,
           device: str = "cpu") -> torch.Tensor:
    """How a model that draws in steps (DRAW) paints ``n`` new pictures: the canvas after each step,
    (n, T, C, H, W) floats in [0, 1]. ``out``: an animated GIF (and a PNG strip beside it)."""
    model = _model(model, CanvasSampler, device)
    n = check_positive_int(n, "n", most=256)
    if out is not None:
        out = output_path(out, "out", (".gif",))
    canvases = model.canvas_steps(n, generator=make_generator(seed, model.device)).cpu()
    if out is not None:
        canvas_figures(canvases, out, nrow=nrow or min(8, n))
    return canvases


__all__ = ["sample", "complete", "reconstruct", "interpolate", "canvas", "dataset_images"]
