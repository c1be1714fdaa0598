"""What the task functions share: loading a model given by name, directory or object, checking that it
can do what is asked, devices, seeds and output paths."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from pixloom.errors import ArgumentError, PixloomError
from pixloom.models.base import PixloomModel
from pixloom.models.capabilities import capabilities_of
from pixloom.models.registry import load_pretrained
from pixloom.training.trainer import pick_device

# What each capability lets a user do, for "cannot ..." messages.
VERBS = {"Sampler": "draw samples", "Completer": "complete images", "Autoencoder": "encode and reconstruct images",
         "CanvasSampler": "show its canvas over steps", "Captioning": "caption images",
         "Likelihood": "score a likelihood", "Trainable": "be trained", "Upscaler": "upscale images"}


def load_model(model, device: str | torch.device = "cpu") -> PixloomModel:
    """A model object as is (moved to ``device``), or a run directory / shipped name loaded onto it."""
    if isinstance(model, PixloomModel):
        return model.to(pick_device(device) if isinstance(device, str) else device)
    if not isinstance(model, (str, os.PathLike)):
        raise ArgumentError("model", f"must be a model, a run directory or a shipped model name, got {type(model).__name__}")
    return load_pretrained(model, map_location=pick_device(device) if isinstance(device, str) else device)


def require(model: PixloomModel, capability: type, source=None) -> PixloomModel:
    """``model`` if it declares ``capability``; otherwise a one-line error saying what it can do."""
    if isinstance(model, capability):
        return model
    what = VERBS.get(capability.__name__, capability.__name__)
    can = ", ".join(capabilities_of(model)) or "nothing"
    named = f"'{source}' is a {model.name} model" if source is not None else f"a {model.name} model"
    raise PixloomError(f"{named}, which cannot {what} (it can: {can})")


def check_seed(seed) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
        raise ArgumentError("seed", f"must be an integer from 0 to 2**63 - 1, got {seed!r}")
    return seed


def make_generator(seed: int | None, device) -> torch.Generator | None:
    """A torch generator seeded with ``seed`` on ``device`` (None: torch's global one)."""
    seed = check_seed(seed)
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(seed)


def check_positive_int(value, name: str, least: int = 1, most: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ArgumentError(name, f"must be a whole number of at least {least}, got {value!r}")
    if most is not None and value > most:
        raise ArgumentError(name, f"must be at most {most:,}, got {value:,}")
    return value


def check_number(value, name: str, least: float | None = None, above: float | None = None) -> float:
    """A finite number (``least``: at least; ``above``: strictly greater than)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ArgumentError(name, f"must be a finite number, got {value!r}")
    if least is not None and value < least:
        raise ArgumentError(name, f"must be at least {least:g}, got {value:g}")
    if above is not None and value <= above:
        raise ArgumentError(name, f"must be greater than {above:g}, got {value:g}")
    return value


def output_path(path, name: str = "out", suffixes: tuple[str, ...] | None = None) -> Path:
    """A path to write a file to: its folder must exist or be creatable and be writable; checked
    before any work so that a long computation never ends in a write error."""
    if path is None or str(path) == "":
        raise ArgumentError(name, "is required: a file path")
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ArgumentError(name, f"must end in {' or '.join(suffixes)}, got {path}")
    if path.is_dir():
        raise ArgumentError(name, f"{path} is a folder; give a file name")
    ensure_writable_dir(path.parent, name)
    return path


def ensure_writable_dir(folder: Path, name: str = "out") -> Path:
    """Create ``folder`` (and its parents) if needed and check that files can be written in it."""
    folder = Path(folder) if str(folder) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ArgumentError(name, f"cannot create the folder {folder}: a file of that name is in the way") from None
    except OSError as exc:
        raise ArgumentError(name, f"cannot create the folder {folder}: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise ArgumentError(name, f"{folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ArgumentError(name, f"cannot write to {folder}: permission denied")
    return folder
