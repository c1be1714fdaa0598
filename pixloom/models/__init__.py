"""Model registry: a plain dict from the names the CLI uses to model classes."""

from __future__ import annotations

from pixloom.errors import PixloomError
from pixloom.models.autoregressive.pixel_lstm import PixelLSTM
from pixloom.models.autoregressive.row_lstm import RowLSTM

MODELS = {
    RowLSTM.name: RowLSTM,
    PixelLSTM.name: PixelLSTM,
}


def get_model_class(name: str):
    try:
        return MODELS[name]
    except KeyError:
        raise PixloomError(f"unknown model '{name}'; available: {', '.join(sorted(MODELS))}") from None
