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
the order ``[i, f, o, g]``. Inside the loop tensors are kept channels-last so the state-to-state
convolution is one matrix product over shifted views of the previous state.

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


def lstm_cell(gates: torch.Tensor, c_prev: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gates (..., 4h) ordered [i, f, o, g] and the previous cell (..., h) (None = zeros) -> (h, c)."""
    hidden = gates.shape[-1] // 4
    i, f, o = torch.sigmoid(gates[..., : 3 * hidden]).chunk(3, dim=-1)
    g = torch.tanh(gates[..., 3 * hidden :])
    c = i * g if c_prev is None else torch.addcmul(i * g, f, c_prev)
    return o * torch.tanh(c), c


def _diagonal_view(t: torch.Tensor, step: int) -> torch.Tensor:
    """(G, H, W, B, C) -> (G, n, B, C): skewed column ``step`` (see :func:`lstm_scan`), a view."""
    return torch.diagonal(t, offset=t.shape[2] - 1 - step, dim1=1, dim2=2).movedim(-1, 1)


def _row_view(t: torch.Tensor, step: int) -> torch.Tensor:
    """(T, G, L, B, C) -> (G, L, B, C): step ``step``, a view."""
    return t[step]


class _LSTMScan(torch.autograd.Function):
    """The recurrent loop of both layers with a hand-written backward (see :func:`lstm_scan`).

    Autograd would record ~15 nodes per step, zero-fill a full-size gradient for every slice and
    keep every intermediate. Here the forward keeps, per step, only the activations [i, f, o, g],
    tanh(c), h and c of the positions it computed and works in place; the backward is one reverse
    loop over the same steps.
    """

    @staticmethod
    def forward(ctx, x, weight, offsets, diagonal, h0, c0):
        view = _diagonal_view if diagonal else _row_view
        ranges = _ranges(x, diagonal)
        hd = x.shape[-1] // 4
        out = x.new_empty(*x.shape[:-1], hd)  # every position belongs to exactly one step
        saved = []  # per step: (activations, tanh(c), h, c), positions a:b only
        prev = (h0, c0, 0)  # state of the previous step and its first position
        with record_function("pixel_rnn.recurrent_loop"):
            for t, (a, b) in enumerate(ranges):
                h_prev, c_prev, start = prev
                act = view(x, t).clone(memory_format=torch.contiguous_format)  # (G, n, B, 4h)
                if h_prev is not None:
                    for k, d in enumerate(offsets):  # state-to-state tap k: position l reads h_prev[l + d]
                        lo, hi = _overlap(a, b, d, start, start + h_prev.shape[1])
                        if lo < hi:
                            act[:, lo - a : hi - a].flatten(1, 2).baddbmm_(
                                h_prev[:, lo + d - start : hi + d - start].flatten(1, 2), weight[k])
                act[..., : 3 * hd].sigmoid_()
                act[..., 3 * hd :].tanh_()
                i, f, o, g = act.chunk(4, dim=-1)
                c = i * g
                if c_prev is not None:  # the cell continues at the same position
                    lo, hi = _overlap(a, b, 0, start, start + c_prev.shape[1])
                    c[:, lo - a : hi - a].addcmul_(f[:, lo - a : hi - a], c_prev[:, lo - start : hi - start])
                tanh_c = torch.tanh(c)
                h = o * tanh_c
                view(out, t).copy_(h)
                saved.append((act, tanh_c, h, c))
                prev = (h, c, a)
        ctx.offsets, ctx.diagonal, ctx.ranges, ctx.steps = offsets, diagonal, ranges, saved
        ctx.save_for_backward(weight, h0, c0)
        ctx.x_like = (x.shape, x.stride())
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        weight, h0, c0 = ctx.saved_tensors
        view = _diagonal_view if ctx.diagonal else _row_view
        shape, stride = ctx.x_like
        grad_x = torch.empty_strided(shape, stride, dtype=grad_out.dtype, device=grad_out.device)
        grad_w = torch.zeros_like(weight)
        steps = ctx.steps
        groups, _, batch, hd = steps[0][2].shape
        length = max(b for _, b in ctx.ranges)
        dh_carry = grad_out.new_zeros(groups, length, batch, hd)  # from step t + 1 into step t
        dc_carry = torch.zeros_like(dh_carry)
        with record_function("pixel_rnn.recurrent_loop_backward"):
            for t in reversed(range(len(steps))):
                a, b = ctx.ranges[t]
                act, tanh_c, _, _ = steps[t]
                h_prev, c_prev, start = (steps[t - 1][2], steps[t - 1][3], ctx.ranges[t - 1][0]) if t else (h0, c0, 0)
                i, f, o, g = act.chunk(4, dim=-1)
                dh = view(grad_out, t) + dh_carry[:, a:b]
                dc = torch.addcmul(dc_carry[:, a:b], dh * o, 1 - tanh_c * tanh_c)
                d = view(grad_x, t)  # (G, n, B, 4h): gradient of the pre-activations
                sig = act[..., : 3 * hd]
                torch.mul(sig, 1 - sig, out=d[..., : 3 * hd])  # sigmoid'
                di, df, do, dg = d.chunk(4, dim=-1)
                di.mul_(dc * g)
                do.mul_(dh * tanh_c)
                torch.mul(dc * i, 1 - g * g, out=dg)  # tanh'
                dh_carry.zero_()
                dc_carry.zero_()
                if c_prev is None:
                    df.zero_()
                else:
                    lo, hi = _overlap(a, b, 0, start, start + c_prev.shape[1])
                    df[:, : lo - a].zero_()
                    df[:, hi - a :].zero_()
                    df[:, lo - a : hi - a].mul_(dc[:, lo - a : hi - a] * c_prev[:, lo - start : hi - start])
                    torch.mul(dc[:, lo - a : hi - a], f[:, lo - a : hi - a], out=dc_carry[:, lo:hi])
                if h_prev is None:
                    continue
                for k, off in enumerate(ctx.offsets):
                    lo, hi = _overlap(a, b, off, start, start + h_prev.shape[1])
                    if lo < hi:
                        d_rows = d[:, lo - a : hi - a].reshape(groups, -1, 4 * hd)  # (G, n*B, 4h)
                        h_rows = h_prev[:, lo + off - start : hi + off - start].flatten(1, 2)  # (G, n*B, h)
                        dh_carry[:, lo + off : hi + off].flatten(1, 2).baddbmm_(d_rows, weight[k].transpose(1, 2))
                        grad_w[k].baddbmm_(h_rows.transpose(1, 2), d_rows)
        grad_h0 = dh_carry if h0 is not None else None
        grad_c0 = dc_carry if c0 is not None else None
        return grad_x, grad_w, None, None, grad_h0, grad_c0


def _overlap(a: int, b: int, offset: int, start: int, stop: int) -> tuple[int, int]:
    """Positions l in [a, b) whose neighbour l + offset lies in [start, stop)."""
    return max(a, start - offset), min(b, stop - offset)


def _ranges(x: torch.Tensor, diagonal: bool) -> list[tuple[int, int]]:
    """Positions (a, b) computed at each step: all of them, or the real pixels of a skewed column."""
    if not diagonal:
        return [(0, x.shape[2])] * x.shape[0]
    height, width = x.shape[1:3]
    return [(max(0, t - width + 1), min(t, height - 1) + 1) for t in range(height + width - 1)]


def lstm_scan(x: torch.Tensor, weight: torch.Tensor, offsets: tuple[int, ...], diagonal: bool = False,
              h0: torch.Tensor | None = None, c0: torch.Tensor | None = None) -> torch.Tensor:
    """An LSTM over steps whose state-to-state transform is a 1D convolution across positions.

    Gates are ordered [i, f, o, g]; at each position the cell continues from the same position of
    the previous step: c = f * c_prev + i * g, h = o * tanh(c). Tap k of the state-to-state
    convolution adds ``h_prev[l + offsets[k]] @ weight[k]`` at position l (zero outside the map).

    Two layouts (G groups run side by side with their own weights, e.g. two scan directions):

    * rows (``diagonal=False``): x (T, G, L, B, 4h); step t is x[t], L positions (a row's
      columns for the Row LSTM). Returns h (T, G, L, B, h).
    * diagonals (``diagonal=True``): x (G, H, W, B, 4h) holds an image whose *columns are stored
      right to left*; step t is the skewed column t of the paper, i.e. the anti-diagonal
      i + j = t of the image, and its positions are the rows i = max(0, t-W+1) .. min(t, H-1).
      Reversed columns make that anti-diagonal a ``torch.diagonal`` view, so the map is skewed
      without a copy and only real pixels are computed. Returns h (G, H, W, B, h), same layout.

    Args:
        weight: (K, G, h, 4h) state-to-state taps.
        h0, c0: (G, L, B, h) state before the first step (rows layout only); None for zeros.
    """
    return _LSTMScan.apply(x, weight.contiguous(), tuple(offsets), diagonal, h0, c0)


def skew(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W, *rest) -> (N, H, H + W - 1, *rest): row i shifted right by i, zeros elsewhere.

    Pad + reshape views only (one copy, by the pad): padding each row to W + H columns and reading
    the flat buffer back with rows of W + H - 1 columns offsets row i by i.
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
    all rows in one call. State-to-state: a 1D convolution of width k over the previous row's h.
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
        # All rows' input-to-state gates in one convolution: (B, 4h, H, W) -> (H, 1, W, B, 4h) view.
        gates = self.input_to_state(x).permute(2, 3, 0, 1).unsqueeze(1)
        taps = self.state_to_state.weight.permute(2, 1, 0).unsqueeze(1)  # (4h, h, k) -> (k, 1, h, 4h)
        h0, c0 = self._initial(b, width, x)
        if h0 is not None:  # (B, W, h) -> (1, W, B, h)
            h0, c0 = (s.transpose(0, 1).unsqueeze(0).contiguous() for s in (h0, c0))
        hs = lstm_scan(gates, taps, tuple(range(-p, p + 1)), h0=h0, c0=c0)  # (H, 1, W, B, h)
        return hs[:, 0].permute(2, 3, 0, 1)  # (B, h, H, W)

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
    convolution and the states at (i, j - 1) and (i - 1, j) through a 2x1 convolution. To compute a
    whole diagonal at once the map is *skewed* (row i shifted right by i, (B, C, n, n) ->
    (B, C, n, 2n - 1)) so the diagonals become columns, and the loop steps over the 2n - 1 columns;
    the 2x1 convolution of the previous column is one batched matrix product over two row-shifted
    views of it. The right-to-left direction does the same on the mirrored map; its output is shifted
    down one row before it is added, so (i, j) sees only rows < i of it and no future pixel leaks.
    Both directions run in the same loop as one batched product.

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
        xl = x.permute(2, 3, 0, 1)  # (H, W, B, C_in)
        both = torch.stack([xl.flip(1), xl])  # (2, H, W, B, C_in)
        gates = torch.baddbmm(w["bias"].unsqueeze(1), both.flatten(1, 3), w["input"].transpose(1, 2))
        # The 2x1 column convolution as two taps: the same row (offset 0) and the row above (-1).
        taps = torch.stack([w["same"], w["up"]]).transpose(2, 3)  # (2 taps, 2 directions, h, 4h)
        hs = lstm_scan(gates.view(2, height, width, b, 4 * hd), taps, (0, -1), diagonal=True)
        left, right = hs[0].flip(1), hs[1]  # (H, W, B, h) each, columns back in order
        out = left + F.pad(right[:-1], (0, 0, 0, 0, 0, 0, 1, 0))  # right states shifted down one row
        return out.permute(2, 3, 0, 1)  # (B, h, H, W)

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
