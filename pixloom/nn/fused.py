"""Factory for torch's fused recurrent layers (cuDNN on GPU, oneDNN/ATen kernels on CPU)."""

from __future__ import annotations

from torch import nn

from pixloom.errors import PixloomError

CELL_TYPES = ("rnn", "lstm", "gru")


def make_fused_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0) -> nn.RNNBase:
    """A batch-first ``nn.RNN`` (tanh), ``nn.LSTM`` or ``nn.GRU``."""
    kinds = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
    if cell not in kinds:
        raise PixloomError(f"unknown cell '{cell}'; choose one of: {', '.join(CELL_TYPES)}")
    return kinds[cell](
        input_size, hidden_size, num_layers=num_layers, batch_first=True,
        dropout=dropout if num_layers > 1 else 0.0,
    )
