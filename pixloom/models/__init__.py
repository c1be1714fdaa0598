"""Model registry: a plain dict from the names the CLI uses to model classes."""

from __future__ import annotations

from pixloom.errors import PixloomError
from pixloom.models.autoregressive.pixel_lstm import PixelLSTM
from pixloom.models.autoregressive.pixel_rnn import PixelRNN
from pixloom.models.autoregressive.row_lstm import RowLSTM
from pixloom.models.captioning.ensemble import CaptionEnsemble
from pixloom.models.captioning.show_attend_tell import ShowAttendTell
from pixloom.models.captioning.show_tell import ShowTell
from pixloom.models.latent.draw import DRAW
from pixloom.models.latent.rvae import RecurrentVAE
from pixloom.models.latent.seq_autoencoder import SeqAutoencoder

MODELS = {
    RowLSTM.name: RowLSTM,
    PixelLSTM.name: PixelLSTM,
    PixelRNN.name: PixelRNN,
    ShowTell.name: ShowTell,
    ShowAttendTell.name: ShowAttendTell,
    CaptionEnsemble.name: CaptionEnsemble,
    SeqAutoencoder.name: SeqAutoencoder,
    RecurrentVAE.name: RecurrentVAE,
    DRAW.name: DRAW,
}


def get_model_class(name: str):
    try:
        return MODELS[name]
    except KeyError:
        raise PixloomError(f"unknown model '{name}'; available: {', '.join(sorted(MODELS))}") from None
