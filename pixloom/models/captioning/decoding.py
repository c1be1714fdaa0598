"""Greedy decoding and beam search, written once for every captioning decoder.

A decoder exposes two methods (see :class:`~pixloom.models.captioning.base.Captioner`)::

    init_decoder(features) -> state             dict of tensors, batch first
    decode_step(tokens (N,), state) -> (log_probs (N, V), state, attention (N, L) or None)

Both functions ban ``<pad>`` and ``<start>``, ban ``<unk>`` unless ``allow_unk``, ban ``<end>`` as the
first word (no empty captions), and stop after
``max_len`` words even when ``<end>`` is never produced. Beam search keeps finished hypotheses in
the beam (they can only be extended by a free ``<end>``), so it ends as soon as every beam has
finished, and picks the best final hypothesis by ``log p / lp(len)`` with the GNMT length penalty
``lp(len) = ((5 + len) / 6) ** length_penalty`` (0 = plain log-probability). Beam size 1 gives
exactly the greedy caption.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pixloom.data.captions import END_ID, PAD_ID, START_ID, UNK_ID
from pixloom.errors import PixloomError


@dataclass
class Decoded:
    """One caption per image: word ids (no <start>/<end>), total log-probability, whether <end>
    was produced, and the attention weights of each emitted word (words, L) or None."""

    tokens: list[list[int]]
    scores: list[float]
    finished: list[bool]
    attention: list[torch.Tensor | None]


def _ban(log_probs: torch.Tensor, allow_unk: bool, first_step: bool) -> torch.Tensor:
    banned = [PAD_ID, START_ID] + ([] if allow_unk else [UNK_ID]) + ([END_ID] if first_step else [])
    log_probs = log_probs.clone()
    log_probs[:, banned] = float("-inf")
    return log_probs


def _check(max_len: int) -> None:
    if max_len < 1:
        raise PixloomError(f"max_len must be at least 1, got {max_len}")


def _batch_size(state: dict[str, torch.Tensor]) -> int:
    return next(iter(state.values())).shape[0]


@torch.no_grad()
def greedy_decode(decoder, features: dict[str, torch.Tensor], max_len: int = 20, allow_unk: bool = False) -> Decoded:
    """Pick the most likely word at every step."""
    _check(max_len)
    state = decoder.init_decoder(features)
    n = _batch_size(state)
    device = next(iter(state.values())).device
    tokens = torch.full((n,), START_ID, dtype=torch.long, device=device)
    words = torch.full((n, max_len), END_ID, dtype=torch.long, device=device)
    scores = torch.zeros(n, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    attention = []
    for t in range(max_len):
        log_probs, state, att = decoder.decode_step(tokens, state)
        log_probs = _ban(log_probs, allow_unk, t == 0)
        best, tokens = log_probs.max(-1)
        scores = torch.where(done, scores, scores + best)
        words[:, t] = torch.where(done, torch.full_like(tokens, END_ID), tokens)
        if att is not None:
            attention.append(att)
        done = done | (tokens == END_ID)
        if bool(done.all()):
            break
    out_tokens, out_att = [], []
    for b in range(n):
        row = words[b].tolist()
        length = row.index(END_ID) if END_ID in row else max_len
        out_tokens.append(row[:length])
        out_att.append(torch.stack([a[b] for a in attention[:length]]).cpu() if attention else None)
    return Decoded(out_tokens, scores.tolist(), done.tolist(), out_att)


def _gather(x: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """x (B, k, ...) reordered along dim 1 by origin (B, k)."""
    index = origin.view(*origin.shape, *([1] * (x.dim() - 2))).expand(*origin.shape, *x.shape[2:])
    return x.gather(1, index)


@torch.no_grad()
def beam_search(decoder, features: dict[str, torch.Tensor], beam: int = 3, max_len: int = 20,
                length_penalty: float = 0.0, allow_unk: bool = False) -> Decoded:
    """Beam search with ``beam`` hypotheses per image."""
    _check(max_len)
    if beam < 1:
        raise PixloomError(f"beam size must be at least 1, got {beam}")
    state = decoder.init_decoder(features)
    b = _batch_size(state)
    k = beam
    state = {key: v.repeat_interleave(k, dim=0) for key, v in state.items()}
    device = next(iter(state.values())).device
    scores = torch.full((b, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    tokens = torch.full((b * k,), START_ID, dtype=torch.long, device=device)
    history = torch.zeros(b, k, 0, dtype=torch.long, device=device)
    att_history = None
    finished = torch.zeros(b, k, dtype=torch.bool, device=device)
    for t in range(max_len):
        log_probs, state, att = decoder.decode_step(tokens, state)
        log_probs = _ban(log_probs, allow_unk, t == 0).view(b, k, -1)
        vocab = log_probs.shape[-1]
        frozen = torch.full_like(log_probs, float("-inf"))
        frozen[..., END_ID] = 0.0  # a finished hypothesis only "continues" with a free <end>
        log_probs = torch.where(finished.unsqueeze(-1), frozen, log_probs)
        candidates = (scores.unsqueeze(-1) + log_probs).view(b, k * vocab)
        scores, index = candidates.topk(k, dim=1)
        origin, word = index // vocab, index % vocab
        history = torch.cat([_gather(history, origin), word.unsqueeze(-1)], dim=2)
        finished = _gather(finished, origin) | (word == END_ID)
        if att is not None:
            att = att.view(b, k, 1, -1)
            att_history = att if att_history is None else torch.cat([_gather(att_history, origin), _gather(att, origin)], 2)
        flat_origin = (origin + torch.arange(b, device=device).unsqueeze(1) * k).view(-1)
        state = {key: v.index_select(0, flat_origin) for key, v in state.items()}
        tokens = word.view(-1)
        if bool(finished.all()):
            break
    is_end = history == END_ID
    has_end = is_end.any(-1)
    first_end = torch.where(has_end, is_end.float().argmax(-1), torch.full_like(has_end, history.shape[-1], dtype=torch.long))
    generated = first_end + has_end.long()  # words plus the <end> token when produced
    penalty = ((5.0 + generated.float()) / 6.0) ** length_penalty if length_penalty else torch.ones_like(scores)
    best = (scores / penalty).argmax(dim=1)
    out_tokens, out_scores, out_finished, out_att = [], [], [], []
    for i in range(b):
        j = int(best[i])
        length = int(first_end[i, j])
        out_tokens.append(history[i, j, :length].tolist())
        out_scores.append(float(scores[i, j]))
        out_finished.append(bool(has_end[i, j]))
        out_att.append(att_history[i, j, :length].cpu() if att_history is not None else None)
    return Decoded(out_tokens, out_scores, out_finished, out_att)
