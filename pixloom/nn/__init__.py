"""Neural-network building blocks of pixloom."""

from pixloom.nn.cells import GRUCell, LSTMCell, RNNCell, SequenceRNN
__all__ = ["GRUCell", "LSTMCell", "RNNCell", "SequenceRNN"]
