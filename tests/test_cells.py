"""The hand-written cells and SequenceRNN match torch's cells and fused modules exactly.

Every comparison copies torch's weights into the hand-written module, runs both on the same input
and compares outputs, final states and the gradients of a random linear function of everything
returned, taken w.r.t. the input, the initial states and every parameter.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from pixloom.nn import GRUCell, LSTMCell, RNNCell, SequenceRNN

BATCH, TIME, INPUT, HIDDEN = 3, 6, 5, 7

# (name, our cell class, torch cell class, torch sequence class, extra constructor kwargs)
KINDS = {
    "rnn_tanh": ("rnn", RNNCell, nn.RNNCell, nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": ("rnn", RNNCell, nn.RNNCell, nn.RNN, {"nonlinearity": "relu"}),
    "lstm": ("lstm", LSTMCell, nn.LSTMCell, nn.LSTM, {}),
    "gru": ("gru", GRUCell, nn.GRUCell, nn.GRU, {}),
}
# float64 shows the formulas are identical; float32 is what training uses.
TOLERANCES = {torch.float64: 1e-10, torch.float32: 1e-5}


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def random_loss(tensors, seed=0):
    """A random linear function of ``tensors``, so every element gets its own upstream gradient."""
    generator = torch.Generator().manual_seed(seed)
    return sum((t * torch.randn(t.shape, generator=generator, dtype=t.dtype)).sum() for t in tensors)


def assert_close(ours, theirs, atol, what):
    assert ours.shape == theirs.shape, what
    torch.testing.assert_close(ours, theirs, atol=atol, rtol=0, msg=lambda m: f"{what}: {m}")


def torch_style_name(name):
    """``cells.1.weight_ih`` (SequenceRNN) -> ``weight_ih_l1`` (torch.nn.LSTM); cell names as is."""
    return re.sub(r"^cells\.(\d+)\.(\w+)$", r"\2_l\1", name)


def assert_same_function(ours_module, torch_module, inputs, run, atol):
    """Compare ``run(module, *inputs)`` and its gradients w.r.t. ``inputs`` and parameters."""
    results = []
    for module in (ours_module, torch_module):
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        returned = run(module, *leaves)
        params = list(module.parameters())
        grads = torch.autograd.grad(random_loss(returned), leaves + params)
        results.append((returned, grads, [name for name, _ in module.named_parameters()]))
    (ours_out, ours_grads, ours_names), (torch_out, torch_grads, torch_names) = results

    assert len(ours_out) == len(torch_out)
    for k, (a, b) in enumerate(zip(ours_out, torch_out)):
        assert_close(a, b, atol, f"returned tensor {k}")
        assert a.abs().max() > 0.05, f"returned tensor {k} is (nearly) all zero"
    assert len(ours_grads) == len(torch_grads)
    names = [f"input {k}" for k in range(len(inputs))] + [f"parameter {n}" for n in torch_names]
    for name, a, b in zip(names, ours_grads, torch_grads):
        assert_close(a, b, atol, f"gradient of {name}")
        assert a.abs().max() > 0, f"gradient of {name} is all zero"
    # Gradients were paired by position: check the parameters really are in the same order.
    assert [torch_style_name(n) for n in ours_names] == torch_names


# -- cells ----------------------------------------------------------------------------------
def make_cells(kind, dtype, bias=True):
    _, ours_class, torch_class, _, kwargs = KINDS[kind]
    torch.manual_seed(0)
    theirs = torch_class(INPUT, HIDDEN, bias=bias, dtype=dtype, **kwargs)
    ours = ours_class(INPUT, HIDDEN, bias=bias, dtype=dtype, **kwargs)
    ours.load_state_dict(theirs.state_dict())  # strict: same names and shapes
    return ours, theirs


def cell_inputs(kind, dtype, batch=(BATCH,)):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(*batch, INPUT, generator=generator, dtype=dtype)
    h = torch.randn(*batch, HIDDEN, generator=generator, dtype=dtype)
    c = torch.randn(*batch, HIDDEN, generator=generator, dtype=dtype)
    return (x, h, c) if kind == "lstm" else (x, h)


def run_cell(cell, x, *state):
    state = tuple(state) if len(state) == 2 else state[0]
    return as_tuple(cell(x, state))


@pytest.mark.parametrize("dtype", TOLERANCES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_cell_matches_torch(kind, dtype):
    ours, theirs = make_cells(kind, dtype)
    assert_same_function(ours, theirs, cell_inputs(kind, dtype), run_cell, TOLERANCES[dtype])


@pytest.mark.parametrize("kind", KINDS)
def test_cell_without_bias_matches_torch(kind):
    ours, theirs = make_cells(kind, torch.float64, bias=False)
    assert ours.bias_ih is None and ours.bias_hh is None
    assert_same_function(ours, theirs, cell_inputs(kind, torch.float64), run_cell, 1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_cell_default_state_and_unbatched_input(kind):
    ours, theirs = make_cells(kind, torch.float64)
    x, *state = cell_inputs(kind, torch.float64)
    for a, b in zip(as_tuple(ours(x)), as_tuple(theirs(x))):  # state None -> zeros
        assert_close(a, b, 1e-10, "state=None")
    x1, *state1 = (t[0] for t in (x, *state))
    state1 = tuple(state1) if kind == "lstm" else state1[0]
    for a, b in zip(as_tuple(ours(x1, state1)), as_tuple(theirs(x1, state1))):
        assert_close(a, b, 1e-10, "unbatched")


@pytest.mark.parametrize("kind", KINDS)
def test_cell_parameters_and_init_like_torch(kind):
    _, ours_class, torch_class, _, kwargs = KINDS[kind]
    ours = ours_class(INPUT, HIDDEN, **kwargs)
    theirs = torch_class(INPUT, HIDDEN, **kwargs)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in theirs.named_parameters()]
    bound = HIDDEN**-0.5
    for name, p in ours.named_parameters():
        assert p.abs().max() <= bound, name
        assert p.std() > bound / 4, f"{name} looks uninitialised"


def test_cell_projection_split_equals_forward():
    """input_projection of a whole sequence, then step, is the same as calling the cell."""
    cell = LSTMCell(INPUT, HIDDEN, dtype=torch.float64)
    x = torch.randn(BATCH, TIME, INPUT, dtype=torch.float64)
    projected = cell.input_projection(x)
    assert projected.shape == (BATCH, TIME, 4 * HIDDEN)
    state_a = state_b = None
    for t, projected_t in enumerate(projected.unbind(1)):
        state_a = cell(x[:, t], state_a)
        state_b = cell.step(projected_t, state_b if state_b is not None else cell.zero_state(BATCH, x))
        for a, b in zip(state_a, state_b):
            assert_close(a, b, 1e-12, f"step {t}")


def test_cell_rejects_bad_arguments():
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(INPUT, HIDDEN, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="expects input"):
        GRUCell(INPUT, HIDDEN)(torch.randn(BATCH, INPUT + 1))


# -- SequenceRNN ----------------------------------------------------------------------------
def make_sequence(kind, dtype, num_layers=2, batch_first=True, bias=True):
    cell_type, _, _, torch_class, kwargs = KINDS[kind]
    torch.manual_seed(0)
    options = {"num_layers": num_layers, "batch_first": batch_first, "bias": bias, "dtype": dtype, **kwargs}
    theirs = torch_class(INPUT, HIDDEN, **options)
    ours = SequenceRNN(cell_type, INPUT, HIDDEN, **options)
    ours.load_from_torch(theirs)
    return ours, theirs


def sequence_inputs(kind, dtype, num_layers=2, batch_first=True):
    generator = torch.Generator().manual_seed(2)
    shape = (BATCH, TIME, INPUT) if batch_first else (TIME, BATCH, INPUT)
    x = torch.randn(shape, generator=generator, dtype=dtype)
    h = torch.randn(num_layers, BATCH, HIDDEN, generator=generator, dtype=dtype)
    c = torch.randn(num_layers, BATCH, HIDDEN, generator=generator, dtype=dtype)
    return (x, h, c) if kind == "lstm" else (x, h)


def run_sequence(module, x, *state):
    state = tuple(state) if len(state) == 2 else state[0]
    output, final = module(x, state)
    return (output, *as_tuple(final))


@pytest.mark.parametrize("dtype", TOLERANCES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_sequence_matches_torch(kind, dtype):
    ours, theirs = make_sequence(kind, dtype)
    assert_same_function(ours, theirs, sequence_inputs(kind, dtype), run_sequence, TOLERANCES[dtype])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_sequence_time_first_without_bias_matches_torch(kind):
    ours, theirs = make_sequence(kind, torch.float64, num_layers=3, batch_first=False, bias=False)
    inputs = sequence_inputs(kind, torch.float64, num_layers=3, batch_first=False)
    assert_same_function(ours, theirs, inputs, run_sequence, 1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_sequence_default_state_and_layout(kind):
    ours, theirs = make_sequence(kind, torch.float64)
    x = sequence_inputs(kind, torch.float64)[0]
    ours_out, ours_final = ours(x)
    torch_out, torch_final = theirs(x)
    assert ours_out.shape == (BATCH, TIME, HIDDEN)
    assert isinstance(ours_final, tuple) == (kind == "lstm")
    for a, b in zip((ours_out, *as_tuple(ours_final)), (torch_out, *as_tuple(torch_final))):
        assert_close(a, b, 1e-10, "state=None")


def test_copy_to_torch_and_to_torch_round_trip():
    ours = SequenceRNN("gru", INPUT, HIDDEN, num_layers=2)
    theirs = ours.to_torch()
    assert isinstance(theirs, nn.GRU) and theirs.batch_first
    x = torch.randn(BATCH, TIME, INPUT)
    assert_close(ours(x)[0], theirs(x)[0], 1e-5, "to_torch")
    fresh = nn.GRU(INPUT, HIDDEN, num_layers=2, batch_first=True)
    ours.copy_to_torch(fresh)
    for name, p in theirs.named_parameters():
        assert torch.equal(p, getattr(fresh, name)), name


@pytest.mark.parametrize(
    "module",
    [
        nn.GRU(INPUT, HIDDEN, num_layers=2),  # wrong type
        nn.LSTM(INPUT, HIDDEN, num_layers=1),  # wrong depth
        nn.LSTM(INPUT, HIDDEN + 1, num_layers=2),  # wrong size
        nn.LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True),
        nn.LSTM(INPUT, HIDDEN, num_layers=2, proj_size=3),
    ],
    ids=["type", "layers", "hidden", "bidirectional", "proj"],
)
def test_load_from_torch_rejects_other_architectures(module):
    with pytest.raises(ValueError, match="does not match"):
        SequenceRNN("lstm", INPUT, HIDDEN, num_layers=2).load_from_torch(module)


def test_sequence_rejects_bad_arguments():
    with pytest.raises(ValueError, match="cell_type"):
        SequenceRNN("lsmt", INPUT, HIDDEN)
    with pytest.raises(ValueError, match="nonlinearity"):
        SequenceRNN("gru", INPUT, HIDDEN, nonlinearity="relu")
    with pytest.raises(ValueError, match="expects x"):
        SequenceRNN("rnn", INPUT, HIDDEN)(torch.randn(BATCH, INPUT))
