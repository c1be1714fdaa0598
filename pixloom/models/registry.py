"""The model registry: names (as ``pixloom train NAME`` and config.json spell them) -> classes, and
the shipped models inside the package (``pixloom/pretrained/<name>/``)."""

from __future__ import annotations

from pathlib import Path

from pixloom.errors import CheckpointError, PixloomError
from pixloom.io import read_json
from pixloom.models.autoregressive.pixel_lstm import PixelLSTM
from pixloom.models.autoregressive.pixel_rnn import PixelRNN
from pixloom.models.autoregressive.row_lstm import RowLSTM
from pixloom.models.base import PixloomModel
from pixloom.models.captioning.ensemble import CaptionEnsemble
from pixloom.models.captioning.show_attend_tell import ShowAttendTell
from pixloom.models.captioning.show_tell import ShowTell
from pixloom.models.latent.draw import DRAW
from pixloom.models.latent.rvae import RecurrentVAE
from pixloom.models.latent.seq_autoencoder import SeqAutoencoder

MODELS: dict[str, type[PixloomModel]] = {cls.name: cls for cls in (
    RowLSTM, PixelLSTM, PixelRNN, SeqAutoencoder, RecurrentVAE, DRAW, ShowTell, ShowAttendTell, CaptionEnsemble,
)}

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"


def get_model_class(name: str) -> type[PixloomModel]:
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise PixloomError(f"unknown model '{name}'; available: {', '.join(sorted(MODELS))}") from None


def shipped_models() -> list[str]:
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "config.json").is_file())


def resolve_model_dir(dir_or_name: str | Path) -> Path:
    """A run/model directory, or the directory of a model shipped inside the package."""
    path = Path(dir_or_name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{path} is not a saved model (no config.json)")
        return path
    name = str(dir_or_name)
    shipped = PRETRAINED_DIR / name
    if name and "/" not in name and "\\" not in name and name not in (".", "..") and (shipped / "config.json").is_file():
        return shipped
    names = ", ".join(shipped_models()) or "none"
    raise CheckpointError(f"no run directory or shipped model named '{dir_or_name}' (shipped models: {names})")


def saved_model_kind(dir_or_name: str | Path) -> type[PixloomModel]:
    """The class of a saved model, read from its config.json (cheap: no weights are read)."""
    directory = resolve_model_dir(dir_or_name)
    meta = read_json(directory / "config.json")
    if not isinstance(meta, dict) or "model" not in meta:
        raise CheckpointError(f"{directory / 'config.json'} is not a pixloom model config")
    return get_model_class(meta["model"])


def load_pretrained(dir_or_name: str | Path, map_location="cpu") -> PixloomModel:
    """Load a model of any registered kind, reading its kind from ``config.json``."""
    return saved_model_kind(dir_or_name).from_pretrained(dir_or_name, map_location=map_location)
