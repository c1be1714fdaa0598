"""The two spatial LSTM layers of PixelRNN: Row LSTM and Diagonal BiLSTM.

van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks" (ICML), Sec. 3.1-3.2.
Both layers map a (B, C_in, H, W) feature map to (B, h, H, W) hidden states and are causal in the
mask-B sense: the state at pixel (i, j) depends on the inputs at pixels before (i, j) in raster order
and, through a mask-B input-to-state convolution, on the input at (i, j) itself (colour group ``<= k``
for hidden units of group ``k`` when ``channels = 3``).

Each layer splits its work as the paper does: the input-to-state convolution runs once over the whole
map before the recurrent loop; the loop only adds the state-to-state convolution and the LSTM gates

    [o, f, i, g] = [sigmoid, sigmoid, sigmoid, tanh](K_ss (*) h_prev + K_is (*) x),
    c = f * c_prev + i * g,    h = o * tanh(c)

(gate ``g`` takes ``tanh``; some public implementations wrongly use ``sigmoid``). Gates are stored in
the order ``[i, f, o, g]``. Both loops are one function, :func:`lstm_scan`: an LSTM whose
state-to-state transform is a 1D convolution across the positions of a step (a row's columns for the
Row LSTM, a skewed column's rows for the Diagonal BiLSTM), with a hand-written backward.

For fast sampling each layer also offers an incremental interface (``start_cache``, ``step``,
``next_row``) that carries the recurrent state across pixels and computes only the columns a new
pixel changes; it computes the same function as ``forward``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.profiler import record_function

from pixloom.nn.masked_conv import MaskedConv2d


def _tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x) as 2 sigmoid(2x) - 1: the same function, several times faster than torch.tanh on CPU."""
    return torch.mul(x, 2).sigmoid_().mul_(2).sub_(1)


def lstm_cell(gates: torch.Tensor, c_prev: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gates (..., 4h) ordered [i, f, o, g] and the previous cell (..., h) (None = zeros) -> (h, c)."""
    hidden = gates.shape[-1] // 4
    i, f, o = torch.sigmoid(gates[..., : 3 * hidden]).chunk(3, dim=-1)
    g = _tanh(gates[..., 3 * hidden :])
    c = i * g if c_prev is None else torch.addcmul(i * g, f, c_prev)
    return o * _tanh(c), c


def _diagonal_view(t: torch.Tensor, step: int) -> torch.Tensor:
    """(G, B, H, W, C) -> (G, B, n, C): skewed column ``step`` (see :func:`lstm_scan`), a view."""
    return torch.diagonal(t, offset=t.shape[3] - 1 - step, dim1=2, dim2=3).movedim(-1, 2)


def _steps(t: torch.Tensor, diagonal: bool) -> list[torch.Tensor] | tuple[torch.Tensor, ...]:
    """Views of every step of ``t`` in :func:`lstm_scan`'s layout, taken once before a loop."""
    if diagonal:
        return [_diagonal_view(t, step) for step in range(t.shape[2] + t.shape[3] - 1)]
    return t.unbind(0)  # (T, G, B, L, C) -> T x (G, B, L, C)


def _ranges(x: torch.Tensor, diagonal: bool) -> list[tuple[int, int]]:
    """Positions [a, b) computed at each step: all of them, or the real pixels of a skewed column."""
    if not diagonal:
        return [(0, x.shape[3])] * x.shape[0]
    height, width = x.shape[2:4]
    return [(max(0, t - width + 1), min(t, height - 1) + 1) for t in range(height + width - 1)]


def _empty_like_layout(shape: torch.Size, stride: tuple[int, ...], channels: int, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` with ``channels`` in the last dimension, whose dimensions
    lie in memory in the order the strides ``stride`` give (channels-last stays channels-last)."""
    dims = len(shape)
    order = sorted(range(dims - 1), key=lambda d: stride[d], reverse=True) + [dims - 1]
    base = like.new_empty([shape[d] for d in order[:-1]] + [channels])
    return base.permute([order.index(d) for d in range(dims)])


def _overlap(a: int, b: int, offset: int, start: int, stop: int) -> tuple[int, int]:
    """Positions l in [a, b) whose neighbour l + offset lies in [start, stop)."""
    return max(a, start - offset), min(b, stop - offset)


def _gather(prev: torch.Tensor, start: int, a: int, b: int, offsets: tuple[int, ...]) -> torch.Tensor:
    """States (G, B, m, h) of positions start .. start+m-1 -> window (G, B, b-a, K*h) whose block k
    at position l is ``prev[..., l + offsets[k], :]``, zero where that position was not computed."""
    groups, batch, m, hd = prev.shape
    if offsets == (0,) and start == a and m == b - a:
        return prev
    window = prev.new_zeros(groups, batch, b - a, len(offsets) * hd)
    for k, d in enumerate(offsets):
        lo, hi = _overlap(a, b, d, start, start + m)
        if lo < hi:
            window[:, :, lo - a : hi - a, k * hd : (k + 1) * hd] = prev[:, :, lo + d - start : hi + d - start]
    return window


def _scatter_add(target: torch.Tensor, grad_window: torch.Tensor, a: int, offsets: tuple[int, ...]) -> None:
    """Adjoint of :func:`_gather`: add block k of ``grad_window`` (G, B, n, K*h) at position l to
    ``target[..., l + offsets[k], :]`` (target (G, B, L, h)), dropping positions outside 0 .. L-1."""
    n, hd = grad_window.shape[2], target.shape[-1]
    for k, d in enumerate(offsets):
        lo, hi = _overlap(a, a + n, d, 0, target.shape[2])
        if lo < hi:
            target[:, :, lo + d : hi + d] += grad_window[:, :, lo - a : hi - a, k * hd : (k + 1) * hd]


class _LSTMScan(torch.autograd.Function):
    """The recurrent loop of both layers with a hand-written backward (see :func:`lstm_scan`).

    Autograd would record ~15 nodes per step, zero-fill a full-size gradient for every slice and
    keep every intermediate. Here each step gathers the state-to-state taps into one window so
    the convolution is a single batched product, works in place, and keeps only what the backward
    needs: activations [i, f, o, g], tanh(c), the aligned previous cell and the window.
    """

    @staticmethod
    def forward(ctx, x, weight, offsets, diagonal, h0, c0):
        ranges = _ranges(x, diagonal)
        taps, groups, hd, _ = weight.shape
        w_cat = weight.transpose(0, 1).reshape(groups, taps * hd, 4 * hd)  # window @ w_cat
        out = _empty_like_layout(x.shape, x.stride(), hd, x)  # each position belongs to exactly one step
        x_steps, out_steps = _steps(x, diagonal), _steps(out, diagonal)
        saved = []
        h_prev, c_prev, start = h0, c0, 0  # state of the previous step and its first position
        with record_function("pixel_rnn.recurrent_loop"):
            for t, (a, b) in enumerate(ranges):
                act = x_steps[t].clone(memory_format=torch.contiguous_format)  # (G, B, n, 4h)
                window = None if h_prev is None else _gather(h_prev, start, a, b, offsets)  # (G, B, n, K*h)
                if window is not None:
                    act.view(groups, -1, 4 * hd).baddbmm_(window.reshape(groups, -1, taps * hd), w_cat)
                act[..., 3 * hd :].mul_(2)  # one sigmoid over all gates: tanh(g) = 2 sigmoid(2g) - 1
                act.sigmoid_()
                act[..., 3 * hd :].mul_(2).sub_(1)
                i, f, o, g = act.chunk(4, dim=-1)
                c = i * g
                c_prev = None if c_prev is None else _gather(c_prev, start, a, b, (0,))  # same positions
                if c_prev is not None:
                    c.addcmul_(f, c_prev)
                tanh_c = _tanh(c)
                h = o * tanh_c
                out_steps[t].copy_(h)
                saved.append((act, tanh_c, c_prev, window))
                h_prev, c_prev, start = h, c, a
        ctx.offsets, ctx.diagonal, ctx.ranges, ctx.steps = offsets, diagonal, ranges, saved
        ctx.has_h0, ctx.has_c0 = h0 is not None, c0 is not None
        ctx.x_layout = (x.shape, x.stride())
        ctx.save_for_backward(w_cat)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (w_cat,) = ctx.saved_tensors
        groups, taps_hd, four_h = w_cat.shape
        hd = four_h // 4
        grad_x = _empty_like_layout(*ctx.x_layout, four_h, grad_out)
        grad_x_steps, grad_out_steps = _steps(grad_x, ctx.diagonal), _steps(grad_out, ctx.diagonal)
        grad_w = torch.zeros_like(w_cat)
        batch, length = ctx.steps[0][0].shape[1], max(b for _, b in ctx.ranges)
        dh_carry = grad_out.new_zeros(groups, batch, length, hd)  # from step t + 1 into step t
        dc_carry = torch.zeros_like(dh_carry)
        with record_function("pixel_rnn.recurrent_loop_backward"):
            for t in reversed(range(len(ctx.ranges))):
                a, b = ctx.ranges[t]
                act, tanh_c, c_prev, window = ctx.steps[t]
                i, f, o, g = act.chunk(4, dim=-1)
                dh = grad_out_steps[t] + dh_carry[:, :, a:b]
                dc = torch.addcmul(dc_carry[:, :, a:b], dh * o, 1 - tanh_c * tanh_c)
                d = act * (1 - act)  # gradient of the pre-activations; sigmoid' for i, f, o
                di, df, do, dg = d.chunk(4, dim=-1)
                di.mul_(dc * g)
                do.mul_(dh * tanh_c)
                if c_prev is None:
                    df.zero_()
                else:
                    df.mul_(dc * c_prev)
                torch.mul(dc * i, 1 - g * g, out=dg)  # tanh'
                grad_x_steps[t].copy_(d)
                dh_carry.zero_()
                dc_carry.zero_()
                if c_prev is not None:
                    _scatter_add(dc_carry, dc * f, a, (0,))
                if window is not None:
                    d_flat = d.view(groups, -1, four_h)  # (G, B*n, 4h)
                    grad_w.baddbmm_(window.reshape(groups, -1, taps_hd).transpose(1, 2), d_flat)
                    grad_window = torch.bmm(d_flat, w_cat.transpose(1, 2)).view(*d.shape[:3], taps_hd)
                    _scatter_add(dh_carry, grad_window, a, ctx.offsets)
        grad_w = grad_w.view(groups, len(ctx.offsets), hd, four_h).transpose(0, 1)
        return (grad_x, grad_w, None, None, dh_carry if ctx.has_h0 else None,
                dc_carry if ctx.has_c0 else None)


def lstm_scan(x: torch.Tensor, weight: torch.Tensor, offsets: tuple[int, ...], diagonal: bool = False,
              h0: torch.Tensor | None = None, c0: torch.Tensor | None = None) -> torch.Tensor:
    """An LSTM over steps whose state-to-state transform is a 1D convolution across positions.

    Gates are ordered [i, f, o, g]; at each position the cell continues from the same position of
    the previous step: c = f * c_prev + i * g, h = o * tanh(c). Tap k of the state-to-state
    convolution adds ``h_prev[l + offsets[k]] @ weight[k]`` at position l (zero outside the map).

    Two layouts (G groups run side by side with their own weights, e.g. two scan directions):

    * rows (``diagonal=False``): x (T, G, B, L, 4h); step t is x[t], with L positions (a row's
      columns for the Row LSTM). Returns h (T, G, B, L, h).
    * diagonals (``diagonal=True``): x (G, B, H, W, 4h) holds an image whose *columns are stored
      right to left*; step t is the skewed column t of the paper, i.e. the anti-diagonal
      i + j = t of the image, and its positions are the rows i = max(0, t-W+1) .. min(t, H-1).
      Reversed columns make that anti-diagonal a ``torch.diagonal`` view, so the map is skewed
      without a copy and only real pixels are computed. Returns h (G, B, H, W, h).

    The output's dimensions lie in memory in the same order as x's (channels-last stays so).

    Args:
        weight: (K, G, h, 4h) state-to-state taps.
        h0, c0: (G, B, L, h) state before the first step (rows layout only); None for zeros.
    """
    return _LSTMScan.apply(x, weight.contiguous(), tuple(offsets), diagonal, h0, c0)


def skew(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W, *rest) -> (N, H, H + W - 1, *rest): row i shifted right by i, zeros elsewhere.

    The paper's skew (Fig. 3), by pad + reshape views only (one copy, by the pad): padding each row
    to W + H columns and reading the flat buffer back with rows of W + H - 1 columns offsets row i
    by i. The Diagonal BiLSTM never materialises it: :func:`lstm_scan` reads each skewed column as a
    ``torch.diagonal`` view of the unskewed map (the tests check both agree).
    """
    n, height, width = x.shape[:3]
    rest = x.shape[3:]
    padded = F.pad(x, [0, 0] * len(rest) + [0, height])  # (N, H, W + H, *rest)
    size = height * (height + width - 1) * math.prod(rest)
    return padded.flatten(1)[:, :size].view(n, height, height + width - 1, *rest)


def unskew(x: torch.Tensor, width: int) -> torch.Tensor:
    """Inverse of :func:`skew`: (N, H, H + W - 1, *rest) -> (N, H, W, *rest) (a view of one copy)."""
    n, height, columns = x.shape[:3]
    rest = x.shape[3:]
    flat = F.pad(x.flatten(1), (0, height * math.prod(rest)))  # rows of H + W columns
    return flat.view(n, height, columns + 1, *rest)[:, :, :width]


# -- Row LSTM -------------------------------------------------------------------------------------
@dataclass
class RowLSTMCache:
    """Sampling state of one Row LSTM layer (channels-last, one image row)."""

    x_row: torch.Tensor  # (B, p + W, C_in) inputs of the current row, p zero columns on the left
    h_prev: torch.Tensor  # (B, p + W + p, h) states of the row above, zero-padded for the kernel
    c_prev: torch.Tensor  # (B, W, h)
    h_row: torch.Tensor  # (B, W, h) states of the current row computed so far
    c_row: torch.Tensor  # (B, W, h)
    from_above: torch.Tensor  # (B, W, 4h) K_ss (*) h_prev + input bias, once per row


class RowLSTMLayer(nn.Module):
    """Row LSTM (Sec. 3.1): processes the image row by row, top to bottom.

    Input-to-state: a 1 x k convolution along the row, masked B (columns j - k//2 .. j), computed for
    all rows in one call. State-to-state: a 1D convolution of width k over the previous row's h
    (``state_to_state`` holds its weight; :func:`lstm_scan` applies it as k taps in one product).
    The receptive field of (i, j) is the triangle above it (plus the k//2 pixels to its left).

    Args:
        in_channels: C_in.  hidden: h.  k: kernel width of both convolutions (odd).
        channels: image colour channels (3: R -> G -> B masking).
        learn_initial_state: learn the (h, c) of a virtual row above the image instead of zeros.

    Shapes: (B, C_in, H, W) -> (B, h, H, W).
    """

    def __init__(self, in_channels: int, hidden: int, k: int = 3, channels: int = 1,
                 learn_initial_state: bool = False):
        super().__init__()
        self.hidden, self.k = hidden, k
        self.input_to_state = MaskedConv2d(in_channels, 4 * hidden, (1, k), "B", channels=channels, out_blocks=4)
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, k, padding=k // 2, bias=False)
        self.initial_state = nn.Parameter(torch.zeros(2, hidden)) if learn_initial_state else None

    def _initial(self, batch: int, width: int, like: torch.Tensor):
        """(h, c) of the row above the image, each (B, W, h), or (None, None) for zeros."""
        if self.initial_state is None:
            return None, None
        h0, c0 = self.initial_state.to(like.dtype)
        return h0.expand(batch, width, -1), c0.expand(batch, width, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, height, width = x.shape
        p = self.k // 2
        # All rows' input-to-state gates in one convolution: (B, 4h, H, W) -> (H, 1, B, W, 4h) view.
        gates = self.input_to_state(x).permute(2, 0, 3, 1).unsqueeze(1)
        taps = self.state_to_state.weight.permute(2, 1, 0).unsqueeze(1)  # (4h, h, k) -> (k, 1, h, 4h)
        h0, c0 = self._initial(b, width, x)
        if h0 is not None:  # (B, W, h) -> (1, B, W, h)
            h0, c0 = h0.unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous()
        hs = lstm_scan(gates, taps, tuple(range(-p, p + 1)), h0=h0, c0=c0)  # (H, 1, B, W, h)
        return hs[:, 0].permute(1, 3, 0, 2)  # (B, h, H, W)

    # -- incremental evaluation (cached sampling) ------------------------------------------
    @torch.no_grad()
    def start_cache(self, batch: int, width: int, like: torch.Tensor) -> RowLSTMCache:
        """State before the first row; ``like`` gives the device and dtype."""
        p, h = self.k // 2, self.hidden
        new = lambda *shape: like.new_zeros(*shape)  # noqa: E731
        cache = RowLSTMCache(new(batch, p + width, self.input_to_state.in_channels), new(batch, width + 2 * p, h),
                             new(batch, width, h), new(batch, width, h), new(batch, width, h), new(0))
        h0, c0 = self._initial(batch, width, like)
        if h0 is not None:
            cache.h_prev[:, p : p + width] = h0
            cache.c_prev.copy_(c0)
        self._prepare_row(cache)
        return cache

    def _prepare_row(self, cache: RowLSTMCache) -> None:
        w_ss = self.state_to_state.weight.flatten(1)  # (4h, h*k)
        window = cache.h_prev.unfold(1, self.k, 1).flatten(2)  # (B, W, h*k)
        cache.from_above = F.linear(window, w_ss, self.input_to_state.bias)

    @torch.no_grad()
    def step(self, cache: RowLSTMCache, start: int, x: torch.Tensor) -> torch.Tensor:
        """Inputs x (B, n, C_in) at columns start .. start+n-1 of the current row -> h (B, n, h).

        Columns of one row do not depend on each other's states, so any run of columns whose
        inputs are known is computed at once. Calling again for the same columns recomputes them.
        """
        n, p = x.shape[1], self.k // 2
        cache.x_row[:, p + start : p + start + n] = x
        # Mask B keeps kernel columns 0..p (j - p .. j); the future half is dropped, not multiplied.
        w_is = self.input_to_state.masked_weight[:, :, 0, : p + 1].flatten(1)  # (4h, C_in*(p+1))
        window = cache.x_row[:, start : start + n + p].unfold(1, p + 1, 1).flatten(2)  # (B, n, C_in*(p+1))
        gates = cache.from_above[:, start : start + n] + F.linear(window, w_is)
        h, c = lstm_cell(gates, cache.c_prev[:, start : start + n])
        cache.h_row[:, start : start + n] = h
        cache.c_row[:, start : start + n] = c
        return h

    @torch.no_grad()
    def next_row(self, cache: RowLSTMCache) -> None:
        """The current row is final: it becomes the row above."""
        p = self.k // 2
        cache.h_prev[:, p : p + cache.h_row.shape[1]] = cache.h_row
        cache.c_prev.copy_(cache.c_row)
        self._prepare_row(cache)


# -- Diagonal BiLSTM ---------------------------------------------------------------------------
@dataclass
class DiagonalBiLSTMCache:
    """Sampling state of one Diagonal BiLSTM layer (channels-last, one image row)."""

    x_row: torch.Tensor  # (B, W, C_in) inputs of the current row
    left_h: torch.Tensor  # (B, 1 + W, h) left-to-right states of the current row, column 0 = zeros
    left_c: torch.Tensor  # (B, 1 + W, h)
    left_from_above: torch.Tensor  # (B, W, 4h) up-kernel of the row above's left states + bias
    right_above: torch.Tensor  # (B, W, h) right-to-left states of the row above (the shifted output)
    weights: dict  # masked weights, split per direction


class DiagonalBiLSTMLayer(nn.Module):
    """Diagonal BiLSTM (Sec. 3.2): two LSTMs that scan the image along diagonals.

    The left-to-right direction: the state at (i, j) reads the input at (i, j) through a 1x1 mask-B
    convolution and the states at (i, j - 1) and (i - 1, j) through a 2x1 convolution. In the
    paper's *skewed* map (row i shifted right by i, (n, n) -> (n, 2n - 1), see :func:`skew`) these
    are the previous column's rows i and i - 1, so the loop steps over the 2n - 1 columns and does
    a whole diagonal at once. Here :func:`lstm_scan` reads each skewed column as a diagonal view of
    the unskewed gates (no copy) and computes only its real pixels (n^2 cells, not n(2n - 1)).
    The right-to-left direction is the same scan of the mirrored map; its output is shifted down one
    row before it is added, so (i, j) sees only rows < i of it and no future pixel leaks. Both
    directions share the loop as one batched product.

    Args:
        in_channels: C_in.  hidden: h (per direction).  channels: image colour channels.

    Shapes: (B, C_in, H, W) -> (B, h, H, W).
    """

    def __init__(self, in_channels: int, hidden: int, channels: int = 1):
        super().__init__()
        self.hidden = hidden
        # 1x1 mask B, both directions at once: out = [left i, f, o, g | right i, f, o, g].
        self.input_to_state = MaskedConv2d(in_channels, 8 * hidden, 1, "B", channels=channels, out_blocks=8)
        # 2x1 column kernels (direction, 4h, h, [row above, same row]), no bias (the input side has it).
        bound = 1.0 / math.sqrt(2 * hidden)
        self.state_to_state = nn.Parameter(torch.empty(2, 4 * hidden, hidden, 2).uniform_(-bound, bound))

    def _split_weights(self) -> dict:
        """Masked input-to-state (2, 4h, C_in), its bias (2, 4h) and the 2x1 kernels (2, 4h, h) each."""
        hd = self.hidden
        return {
            "input": self.input_to_state.masked_weight.view(2, 4 * hd, -1),
            "bias": self.input_to_state.bias.view(2, 4 * hd),
            "up": self.state_to_state[..., 0],
            "same": self.state_to_state[..., 1],
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, height, width = x.shape
        hd = self.hidden
        w = self._split_weights()
        # Input-to-state for the whole map and both directions: one batched product. Columns are
        # stored right to left for the left-to-right pass and as they are for the mirrored pass,
        # the layout in which lstm_scan reads skewed columns as diagonal views.
        xl = x.permute(0, 2, 3, 1)  # (B, H, W, C_in), free for channels-last input
        both = torch.stack([xl.flip(2), xl])  # (2, B, H, W, C_in)
        gates = torch.baddbmm(w["bias"].unsqueeze(1), both.flatten(1, 3), w["input"].transpose(1, 2))
        # The 2x1 column convolution as two taps: the same row (offset 0) and the row above (-1).
        taps = torch.stack([w["same"], w["up"]]).transpose(2, 3)  # (2 taps, 2 directions, h, 4h)
        hs = lstm_scan(gates.view(2, b, height, width, 4 * hd), taps, (0, -1), diagonal=True)
        left, right = hs[0].flip(2), hs[1]  # (B, H, W, h) each, columns back in order
        out = left + F.pad(right[:, :-1], (0, 0, 0, 0, 1, 0))  # right states shifted down one row
        return out.permute(0, 3, 1, 2)  # (B, h, H, W), channels-last in memory

    # -- incremental evaluation (cached sampling) ------------------------------------------
    @torch.no_grad()
    def start_cache(self, batch: int, width: int, like: torch.Tensor) -> DiagonalBiLSTMCache:
        """State before the first row; ``like`` gives the device and dtype."""
        hd = self.hidden
        w = self._split_weights()
        new = lambda *shape: like.new_zeros(*shape)  # noqa: E731
        return DiagonalBiLSTMCache(
            new(batch, width, self.input_to_state.in_channels), new(batch, 1 + width, hd), new(batch, 1 + width, hd),
            w["bias"][0].expand(batch, width, -1).clone(), new(batch, width, hd), w,
        )

    @torch.no_grad()
    def step(self, cache: DiagonalBiLSTMCache, start: int, x: torch.Tensor) -> torch.Tensor:
        """Inputs x (B, n, C_in) at columns start .. start+n-1 of the current row -> output (B, n, h).

        Left-to-right states are computed one column at a time from their left neighbour and the
        cached row above; the right-to-left part is the cached row above (see ``next_row``).
        """
        n, w = x.shape[1], cache.weights
        cache.x_row[:, start : start + n] = x
        from_input = cache.left_from_above[:, start : start + n] + F.linear(x, w["input"][0])
        for q, gates in enumerate(from_input.unbind(1)):
            j = start + q
            gates = torch.addmm(gates, cache.left_h[:, j], w["same"][0].t())
            cache.left_h[:, j + 1], cache.left_c[:, j + 1] = lstm_cell(gates, cache.left_c[:, j])
        return cache.left_h[:, start + 1 : start + n + 1] + cache.right_above[:, start : start + n]

    @torch.no_grad()
    def next_row(self, cache: DiagonalBiLSTMCache) -> None:
        """The current row is final: run its right-to-left scan (once per row; the output shifted
        down means row i only needs rows < i of it) and make it the row above."""
        w, (b, width, hd) = cache.weights, cache.right_above.shape
        gates_all = F.linear(cache.x_row, w["input"][1], w["bias"][1]) + F.linear(cache.right_above, w["up"][1])
        h = c = torch.zeros(b, hd, dtype=gates_all.dtype, device=gates_all.device)  # right of the last column
        right = [None] * width
        for j in reversed(range(width)):
            h, c = lstm_cell(torch.addmm(gates_all[:, j], h, w["same"][1].t()), c)
            right[j] = h
        cache.right_above = torch.stack(right, 1)
        cache.left_from_above = F.linear(cache.left_h[:, 1:], w["up"][0], w["bias"][0])
