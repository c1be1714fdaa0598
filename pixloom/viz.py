"""Pictures: image grids (Pillow) and training curves (matplotlib)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

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


def save_png(picture: Image.Image, path: str | Path) -> Path:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def save_grid(images: torch.Tensor, levels: int, path: str | Path, nrow: int = 8, scale: int = 2) -> Path:
    return save_png(to_pil_grid(images, levels, nrow=nrow, scale=scale), path)


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
