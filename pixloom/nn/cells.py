"""Hand-written recurrent cells, written out from their equations.

These cells compute exactly what :class:`torch.nn.RNNCell`, :class:`torch.nn.LSTMCell` and
:class:`torch.nn.GRUCell` compute, with the same parameter names, shapes, gate order and
initialisation, so weights move freely between the two (``load_state_dict``). They exist for
teaching and for recurrences that torch's fused kernels cannot serve (a modified gate, a state
that is read or written between steps, ...). For a plain RNN/LSTM/GRU over a whole sequence the
fused :class:`torch.nn.RNN`/:class:`~torch.nn.LSTM`/:class:`~torch.nn.GRU` are faster; see
``bench/bench_cells.py``.

Notation: ``x`` is the input at one time step (B, I), ``h`` and ``c`` the previous hidden and cell
states (B, H), ``σ`` the logistic sigmoid and ``⊙`` the elementwise product. Every weight
``W_i*`` is a block of ``weight_ih`` and every ``W_h*`` a block of ``weight_hh``, stacked in the
order the gates are listed.

Elman RNN (Elman 1990)::

    h' = tanh(W_ih x + b_ih + W_hh h + b_hh)          (or relu)

LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000); gates i, f, g, o::

    i  = σ(W_ii x + b_ii + W_hi h + b_hi)             input gate
    f  = σ(W_if x + b_if + W_hf h + b_hf)             forget gate
    g  = tanh(W_ig x + b_ig + W_hg h + b_hg)          candidate cell
    o  = σ(W_io x + b_io + W_ho h + b_ho)             output gate
    c' = f ⊙ c + i ⊙ g
    h' = o ⊙ tanh(c')

GRU (Cho et al. 2014); gates r, z, n::

    r  = σ(W_ir x + b_ir + W_hr h + b_hr)             reset gate
    z  = σ(W_iz x + b_iz + W_hz h + b_hz)             update gate
    n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))    candidate
    h' = (1 - z) ⊙ n + z ⊙ h

The GRU follows torch (and cuDNN): the reset gate multiplies ``W_hn h + b_hn``, whereas Cho et al.
apply it before the product, ``W_hn (r ⊙ h)``. The two are different functions.

Every term ``W_i* x + b_i*`` depends on the input only, so a sequence's input-to-state work can be
done in one matrix product before the time loop. Each cell therefore splits its step in two:
:meth:`input_projection` (``x @ weight_ih.T + bias_ih``, any leading shape) and :meth:`step`
(the hidden-to-hidden part, given the projected input of one step). :class:`SequenceRNN` runs
stacked cells over a sequence this way.

References:
    J. L. Elman. Finding structure in time. Cognitive Science 14(2):179-211, 1990.
    S. Hochreiter, J. Schmidhuber. Long short-term memory. Neural Computation 9(8):1735-1780, 1997.
    F. A. Gers, J. Schmidhuber, F. Cummins. Learning to forget: continual prediction with LSTM.
        Neural Computation 12(10):2451-2471, 2000.
    K. Cho, B. van Merriënboer, C. Gulcehre, D. Bahdanau, F. Bougares, H. Schwenk, Y. Bengio.
        Learning phrase representations using RNN encoder-decoder for statistical machine
        translation. EMNLP 2014 (arXiv:1406.1078).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "SequenceRNN"]

#: A cell's state: ``h`` for the RNN and GRU, ``(h, c)`` for the LSTM.
State = Tensor | tuple[Tensor, Tensor]


class _RecurrentCell(nn.Module):
    """Parameters, initialisation and the single-step ``forward`` shared by the three cells.

    Subclasses set ``num_gates`` (blocks stacked in ``weight_ih``/``weight_hh``) and implement
    :meth:`step` and :meth:`zero_state`.
    """

    num_gates: ClassVar[int] = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        gate_size = self.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gate_size, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(gate_size, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gate_size, **factory))
            self.bias_hh = nn.Parameter(torch.empty(gate_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in ±1/sqrt(hidden_size) for every parameter, as torch's cells do."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        return text if self.bias else text + ", bias=False"

    def input_projection(self, x: Tensor) -> Tensor:
        """``x @ weight_ih.T + bias_ih``: (..., I) -> (..., num_gates * H), e.g. a whole sequence."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def hidden_projection(self, h: Tensor) -> Tensor:
        """``h @ weight_hh.T + bias_hh``: (B, H) -> (B, num_gates * H)."""
        return F.linear(h, self.weight_hh, self.bias_hh)

    def step(self, projected_x: Tensor, state: State) -> State:
        """One time step from the projected input (B, num_gates * H) and the previous state."""
        raise NotImplementedError

    def zero_state(self, batch_size: int, like: Tensor) -> State:
        """The all-zero state for ``batch_size`` rows, on ``like``'s device and dtype."""
        raise NotImplementedError

    def forward(self, x: Tensor, state: State | None = None) -> State:
        """One time step, like torch's cells: x (B, I) or (I,); ``state=None`` means zeros.

        Returns the new state: h (B, H) for the RNN and GRU, (h, c) for the LSTM; unbatched
        input (I,) gives unbatched state (H,).
        """
        if x.dim() not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects input (batch, {self.input_size}) or "
                f"({self.input_size},), got {tuple(x.shape)}"
            )
        unbatched = x.dim() == 1
        if unbatched:
            x = x.unsqueeze(0)
            if state is not None:
                state = _map_state(state, lambda t: t.unsqueeze(0))
        if state is None:
            state = self.zero_state(x.shape[0], x)
        new_state = self.step(self.input_projection(x), state)
        return _map_state(new_state, lambda t: t.squeeze(0)) if unbatched else new_state


class RNNCell(_RecurrentCell):
    """Elman cell: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)`` with act ``"tanh"`` or ``"relu"``."""

    num_gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"unknown nonlinearity '{nonlinearity}'; use 'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.nonlinearity == "tanh" else text + f", nonlinearity='{self.nonlinearity}'"

    def step(self, projected_x: Tensor, state: Tensor) -> Tensor:
        pre_activation = projected_x + self.hidden_projection(state)
        return torch.tanh(pre_activation) if self.nonlinearity == "tanh" else torch.relu(pre_activation)

    def zero_state(self, batch_size: int, like: Tensor) -> Tensor:
        return like.new_zeros(batch_size, self.hidden_size)


class LSTMCell(_RecurrentCell):
    """LSTM cell with forget gate; gates stacked i, f, g, o as in torch. State is ``(h, c)``."""

    num_gates = 4

    def step(self, projected_x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state
        gates = projected_x + self.hidden_projection(h)  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=-1)  # each (B, H)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_next = f * c + i * g
        h_next = o * torch.tanh(c_next)
        return h_next, c_next

    def zero_state(self, batch_size: int, like: Tensor) -> tuple[Tensor, Tensor]:
        zeros = like.new_zeros(batch_size, self.hidden_size)
        return zeros, zeros


class GRUCell(_RecurrentCell):
    """GRU cell in torch's formulation (reset gate applied after ``W_hn h``); gates r, z, n."""

    num_gates = 3

    def step(self, projected_x: Tensor, state: Tensor) -> Tensor:
        h = state
        x_r, x_z, x_n = projected_x.chunk(3, dim=-1)  # each (B, H)
        h_r, h_z, h_n = self.hidden_projection(h).chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h

    def zero_state(self, batch_size: int, like: Tensor) -> Tensor:
        return like.new_zeros(batch_size, self.hidden_size)


CELL_TYPES: dict[str, type[_RecurrentCell]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def _map_state(state: State, fn) -> State:
    """Apply ``fn`` to each tensor of a state (a tensor or an ``(h, c)`` tuple)."""
    return tuple(fn(t) for t in state) if isinstance(state, tuple) else fn(state)


class SequenceRNN(nn.Module):
    """A stack of hand-written cells run over a sequence, a drop-in for torch.nn.RNN/LSTM/GRU.

    ``forward(x, state=None)`` takes x (B, T, I) (or (T, B, I) with ``batch_first=False``) and
    returns ``(output, final_state)``: output holds the last layer's h at every step, (B, T, H)
    (or (T, B, H)), and final_state has torch's layout: h (L, B, H), or ``(h, c)`` for the LSTM.

    Layers run one after the other. For each layer the input projection of the whole sequence is
    one matrix product, split into steps with ``unbind`` (whose backward is one ``stack``;
    indexing ``x[:, t]`` per step would instead write a full-size zero gradient per step); the loop
    does only the hidden-to-hidden work and the outputs are stacked once at the end.

    The cells live in ``self.cells``; :meth:`load_from_torch` / :meth:`copy_to_torch` move weights
    from / to a torch module with the same configuration.
    """

    def __init__(
        self,
        cell_type: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        batch_first: bool = True,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
    ):
        super().__init__()
        if cell_type not in CELL_TYPES:
            raise ValueError(f"unknown cell_type '{cell_type}'; known: {', '.join(CELL_TYPES)}")
        if cell_type != "rnn" and nonlinearity != "tanh":
            raise ValueError(f"nonlinearity applies to cell_type 'rnn' only, not '{cell_type}'")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.cell_type = cell_type
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.bias = bias
        self.nonlinearity = nonlinearity
        extra = {"nonlinearity": nonlinearity} if cell_type == "rnn" else {}
        cell_class = CELL_TYPES[cell_type]
        self.cells = nn.ModuleList(
            cell_class(input_size if k == 0 else hidden_size, hidden_size, bias, device=device, dtype=dtype, **extra)
            for k in range(num_layers)
        )

    def extra_repr(self) -> str:
        return (
            f"'{self.cell_type}', {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"batch_first={self.batch_first}"
        )

    @property
    def is_lstm(self) -> bool:
        return self.cell_type == "lstm"

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            layout = "(batch, time, input)" if self.batch_first else "(time, batch, input)"
            raise ValueError(f"SequenceRNN expects x {layout} with input={self.input_size}, got {tuple(x.shape)}")
        time_dim = 1 if self.batch_first else 0
        batch_size = x.shape[1 - time_dim]
        # Per-layer initial states: a list of h (B, H), or of (h, c) for the LSTM.
        if state is None:
            layer_states = [cell.zero_state(batch_size, x) for cell in self.cells]
        elif self.is_lstm:
            layer_states = list(zip(state[0].unbind(0), state[1].unbind(0)))
        else:
            layer_states = list(state.unbind(0))

        layer_input = x
        final_states = []
        for cell, layer_state in zip(self.cells, layer_states):
            projected = cell.input_projection(layer_input)  # (B, T, G*H), G = number of gates
            outputs = []
            for projected_t in projected.unbind(time_dim):  # each (B, G*H)
                layer_state = cell.step(projected_t, layer_state)
                outputs.append(layer_state[0] if self.is_lstm else layer_state)
            layer_input = torch.stack(outputs, dim=time_dim)  # (B, T, H)
            final_states.append(layer_state)

        if self.is_lstm:
            h_n = torch.stack([h for h, _ in final_states])  # (L, B, H)
            c_n = torch.stack([c for _, c in final_states])
            return layer_input, (h_n, c_n)
        return layer_input, torch.stack(final_states)

    # -- weights to and from torch.nn.RNN / LSTM / GRU ---------------------------------------
    def _torch_mode(self) -> str:
        if self.cell_type == "rnn":
            return "RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU"
        return self.cell_type.upper()

    def _check_torch_module(self, module: nn.RNNBase) -> None:
        """Raise ValueError unless ``module`` has this stack's architecture."""
        ours = (self._torch_mode(), self.input_size, self.hidden_size, self.num_layers, self.bias, False, 0)
        theirs = (
            getattr(module, "mode", type(module).__name__),
            getattr(module, "input_size", None),
            getattr(module, "hidden_size", None),
            getattr(module, "num_layers", None),
            getattr(module, "bias", None),
            getattr(module, "bidirectional", None),
            getattr(module, "proj_size", 0),
        )
        if ours != theirs:
            names = "(mode, input_size, hidden_size, num_layers, bias, bidirectional, proj_size)"
            raise ValueError(f"torch module does not match this SequenceRNN: {names} = {theirs}, expected {ours}")

    def _parameter_pairs(self, module: nn.RNNBase):
        """Yield (our parameter, torch's parameter) for every weight and bias of every layer."""
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else [])
        for k, cell in enumerate(self.cells):
            for name in names:
                yield getattr(cell, name), getattr(module, f"{name}_l{k}")

    @torch.no_grad()
    def load_from_torch(self, module: nn.RNNBase) -> SequenceRNN:
        """Copy the weights of a torch.nn.RNN/LSTM/GRU (``weight_ih_l{k}``, ...) into the cells."""
        self._check_torch_module(module)
        for ours, theirs in self._parameter_pairs(module):
            ours.copy_(theirs)
        return self

    @torch.no_grad()
    def copy_to_torch(self, module: nn.RNNBase) -> nn.RNNBase:
        """Copy the cells' weights into a torch.nn.RNN/LSTM/GRU of the same architecture."""
        self._check_torch_module(module)
        for ours, theirs in self._parameter_pairs(module):
            theirs.copy_(ours)
        return module

    def to_torch(self) -> nn.RNNBase:
        """A new torch.nn.RNN/LSTM/GRU (fused kernels) with this stack's configuration and weights."""
        weight = self.cells[0].weight_ih
        kwargs = {"nonlinearity": self.nonlinearity} if self.cell_type == "rnn" else {}
        torch_class = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[self.cell_type]
        module = torch_class(
            self.input_size,
            self.hidden_size,
            num_layers=self.num_layers,
            bias=self.bias,
            batch_first=self.batch_first,
            device=weight.device,
            dtype=weight.dtype,
            **kwargs,
        )
        return self.copy_to_torch(module)
