"""Pictures: image grids (Pillow) and training curves (matplotlib)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixloom.errors import PixloomError
from pixloom.io import atomic_write_bytes


def to_unit(images: torch.Tensor, levels: int) -> torch.Tensor:
    """Integer levels -> floats in [0, 1]; float images are taken to be in [0, 1] already."""
    images = images.detach().cpu()
    return images.float() if images.is_floating_point() else images.float() / (levels - 1)


def to_pil_grid(images: torch.Tensor, levels: int, nrow: int = 8, padding: int = 2, scale: int = 2,
                pad_value: int = 80) -> Image.Image:
    """Images (N, C, H, W), integer levels or floats in [0, 1] -> one grid picture, upscaled."""
    images = to_unit(images, levels) * 255.0
    n, c, h, w = images.shape
    ncol = min(nrow, n)
    nrows = (n + ncol - 1) // ncol
    grid = np.full((nrows * (h + padding) + padding, ncol * (w + padding) + padding, c), pad_value, np.uint8)
    for k in range(n):
        r, col = divmod(k, ncol)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = images[k].permute(1, 2, 0).round().clamp(0, 255).numpy().astype(np.uint8)
    picture = Image.fromarray(grid[..., 0] if c == 1 else grid, mode="L" if c == 1 else "RGB")
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    return picture


PICTURE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                   ".tif": "TIFF", ".tiff": "TIFF"}


def picture_format(path: str | Path) -> str:
    """The Pillow format a picture path's extension asks for; a one-line error for others."""
    suffix = Path(path).suffix.lower()
    if suffix not in PICTURE_FORMATS:
        raise PixloomError(f"cannot tell the picture format of {path}: give a file name ending in "
                           f"{', '.join(sorted(set(PICTURE_FORMATS)))}")
    return PICTURE_FORMATS[suffix]


def save_picture(picture: Image.Image, path: str | Path) -> Path:
    """Write ``picture`` atomically in the format its extension names (PNG for .png, JPEG for .jpg, ...)."""
    fmt = picture_format(path)
    buffer = io.BytesIO()
    if fmt == "JPEG":
        picture.convert("RGB" if picture.mode not in ("L", "RGB") else picture.mode).save(buffer, format=fmt, quality=95)
    else:
        picture.save(buffer, format=fmt)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def save_grid(images: torch.Tensor, levels: int, path: str | Path, nrow: int = 8, scale: int = 2) -> Path:
    return save_picture(to_pil_grid(images, levels, nrow=nrow, scale=scale), path)


def occluded(images: torch.Tensor, known: torch.Tensor, levels: int) -> torch.Tensor:
    """Floats in [0, 1] with the unknown pixels shown mid-grey (for completion figures)."""
    unit = to_unit(images, levels)
    return torch.where(known.expand_as(unit).cpu(), unit, torch.full_like(unit, 0.5))


def _read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def plot_training_curves(run_dir: str | Path) -> Path | None:
    """loss.png: training loss per logged window and validation loss per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    train = _read_csv(run_dir / "train_log.csv")
    valid = _read_csv(run_dir / "metrics.csv")
    if not train and not valid:
        return None
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if train:
        ax.plot([float(r["epoch"]) for r in train], [float(r["loss"]) for r in train], label="train", lw=1)
    if valid and "valid_loss" in valid[0]:
        ax.plot([float(r["epoch"]) for r in valid], [float(r["valid_loss"]) for r in valid], "o-", label="valid")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(run_dir.name)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    path = run_dir / "loss.png"
    atomic_write_bytes(path, buffer.getvalue())
    return path


def completion_picture(images: torch.Tensor, known: torch.Tensor, completions: torch.Tensor, levels: int) -> Image.Image:
    """One row per input image: occluded input | its completions | original (PixelRNN's Fig. 1).
    ``images`` (B, C, H, W), ``known`` (C, H, W) or (B, C, H, W), ``completions`` (B, K, C, H, W)."""
    rows = []
    for k in range(images.shape[0]):
        mask = known[k] if known.dim() == 4 else known
        rows.append(occluded(images[k:k + 1], mask, levels))
        rows.append(to_unit(completions[k], levels))
        rows.append(to_unit(images[k:k + 1], levels))
    return to_pil_grid(torch.cat(rows), levels, nrow=completions.shape[1] + 2, scale=3)


def completion_figure(images: torch.Tensor, known: torch.Tensor, completions: torch.Tensor, levels: int,
                      path: str | Path) -> Path:
    """:func:`completion_picture`, written to ``path``."""
    return save_picture(completion_picture(images, known, completions, levels), path)


def canvas_figures(canvases: torch.Tensor, gif_path: str | Path, nrow: int, frame_ms: int = 80) -> tuple[Path, Path]:
    """Canvases (n, T, C, H, W) in [0, 1] -> an animated GIF at ``gif_path`` (frame t: the n pictures
    after step t) and a PNG strip beside it (same name, .png): one row per picture (at most 8), one
    column per step (at most 16 evenly spaced steps, always the last)."""
    gif = Path(gif_path)
    n, steps = canvases.shape[:2]
    frames = [to_pil_grid(canvases[:, t], 2, nrow=nrow, scale=2) for t in range(steps)]
    buffer = io.BytesIO()
    durations = [frame_ms] * (steps - 1) + [1500]  # hold the finished picture
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    atomic_write_bytes(gif, buffer.getvalue())
    columns = torch.linspace(0, steps - 1, min(steps, 16)).round().long().unique()
    shown = canvases[: min(n, 8)][:, columns]  # (rows, columns, C, H, W)
    strip = save_picture(to_pil_grid(shown.flatten(0, 1), 2, nrow=len(columns), scale=2), gif.with_suffix(".png"))
    return gif, strip


def attention_figure(image: torch.Tensor, words: list[str], attention: torch.Tensor, path: str | Path,
                     columns: int = 5) -> Path:
    """The image (uint8 (3, S, S)), then one panel per word with its attention weights (over a
    square grid of locations) upsampled over the image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picture = np.asarray(image.permute(1, 2, 0).cpu(), dtype=np.uint8)
    size = picture.shape[0]
    side = int(round(attention.shape[-1] ** 0.5))
    if side * side != attention.shape[-1]:
        raise ValueError(f"attention over {attention.shape[-1]} locations is not a square grid")
    panels = len(words) + 1
    rows = (panels + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(picture)
    axes.flat[0].set_title("input", fontsize=10)
    for k, word in enumerate(words):
        grid = attention[k].float().view(1, 1, side, side)
        heat = torch.nn.functional.interpolate(grid, size=picture.shape[:2], mode="bilinear", align_corners=False)[0, 0]
        ax = axes.flat[k + 1]
        ax.imshow(picture)
        ax.imshow(heat.numpy(), alpha=0.6, cmap="gray", extent=(0, size, size, 0))
        ax.set_title(word, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
