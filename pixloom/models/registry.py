"""The model registry: names (as ``pixloom train NAME`` and config.json spell them) -> classes, and
loading any saved model by the name its config.json gives."""

from __future__ import annotations

from pathlib import Path

from pixloom.errors import CheckpointError, PixloomError
from pixloom.io import read_json
from pixloom.models.autoregressive.pixel_lstm import PixelLSTM
from pixloom.models.autoregressive.pixel_rnn import PixelRNN
from pixloom.models.autoregressive.row_lstm import RowLSTM
from pixloom.models.base import PixloomModel
from pixloom.models.hub import resolve_model_dir
from pixloom.models.captioning.ensemble import CaptionEnsemble
from pixloom.models.classifiers.cnn import CNNClassifier
from pixloom.models.classifiers.row_lstm import RowLSTMClassifier
from pixloom.models.gan.mlp_gan import MLPGAN
from pixloom.models.gan.recurrent_gan import RecurrentGAN
from pixloom.models.captioning.show_attend_tell import ShowAttendTell
from pixloom.models.captioning.show_tell import ShowTell
from pixloom.models.latent.draw import DRAW
from pixloom.models.latent.rvae import RecurrentVAE
from pixloom.models.latent.seq_autoencoder import SeqAutoencoder
from pixloom.models.superres.recursive import PlainSR, RecurrentSR
from pixloom.models.superres.row_lstm_sr import RowLSTMSR

MODELS: dict[str, type[PixloomModel]] = {cls.name: cls for cls in (
    RowLSTM, PixelLSTM, PixelRNN, SeqAutoencoder, RecurrentVAE, DRAW, ShowTell, ShowAttendTell, CaptionEnsemble,
    RecurrentSR, PlainSR, RowLSTMSR, CNNClassifier, RowLSTMClassifier, MLPGAN, RecurrentGAN,
)}

def get_model_class(name: str) -> type[PixloomModel]:
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise PixloomError(f"unknown model '{name}'; available: {', '.join(sorted(MODELS))}") from None


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
