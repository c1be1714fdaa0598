"""Show, Attend and Tell: an LSTM decoder with soft attention over the CNN's spatial grid.

Xu, Ba, Kiros, Cho, Courville, Salakhutdinov, Zemel and Bengio (2015), "Show, Attend and Tell:
Neural Image Caption Generation with Visual Attention", ICML. Deterministic soft attention:

    e_ti = w^T tanh(W_a a_i + W_h h_t-1),  alpha_t = softmax(e_t),  z_t = beta_t * sum_i alpha_ti a_i
    beta_t = sigmoid(f_beta(h_t-1))                       (the gating scalar, Sec. 4.2.1)
    h_t, c_t = LSTM([E y_t-1, z_t], h_t-1, c_t-1),  h_0, c_0 = f_init(mean_i a_i)
    p(y_t) = softmax(L_o(E y_t-1 + L_h h_t + L_z z_t))    (the deep output layer, Eq. 7)

trained with the doubly stochastic attention regularisation ``alpha_c * mean_i (1 - sum_t alpha_ti)^2``
(Eq. 14; averaged over locations as in common re-implementations). The annotation vectors a_i are the
encoder's grid features, optionally projected to ``feature_proj`` dimensions first.

Teacher-forced training sorts the batch by caption length and drops finished captions step by step,
so padding costs nothing. Optional scheduled sampling as in Show and Tell.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pixloom.data.captions import PAD_ID
from pixloom.models.captioning.base import Captioner, CaptionerConfig, word_losses


@dataclass
class ShowAttendTellConfig(CaptionerConfig):
    feature_proj: int = 512  # project a_i to this size first (0 = use the encoder's size)
    embed_size: int = 256
    hidden_size: int = 512
    attention_size: int = 256
    gate: bool = True  # beta_t gating of the context
    deep_output: bool = True  # L_o(E y + L_h h + L_z z) instead of a linear layer on h
    dropout: float = 0.5
    alpha_c: float = 1.0  # weight of the doubly stochastic attention regularisation


class ShowAttendTell(Captioner):
    name = "show-attend-tell"
    config_class = ShowAttendTellConfig
    summary = "Show, Attend and Tell captioner (Xu et al. 2015): soft attention LSTM, beam search"
    has_attention = True
    feature_keys = ("grid",)

    def __init__(self, config: ShowAttendTellConfig):
        super().__init__(config)
        c = config
        d = c.feature_proj or self.feature_size
        self.annotation_size = d
        self.feature_proj = nn.Linear(self.feature_size, d) if c.feature_proj else nn.Identity()
        self.embedding = nn.Embedding(c.vocab_size, c.embed_size, padding_idx=PAD_ID)
        self.init_h = nn.Linear(d, c.hidden_size)
        self.init_c = nn.Linear(d, c.hidden_size)
        self.att_features = nn.Linear(d, c.attention_size)
        self.att_hidden = nn.Linear(c.hidden_size, c.attention_size)
        self.att_score = nn.Linear(c.attention_size, 1)
        self.f_beta = nn.Linear(c.hidden_size, 1) if c.gate else None
        self.cell = nn.LSTMCell(c.embed_size + d, c.hidden_size)
        self.dropout = nn.Dropout(c.dropout)
        if c.deep_output:
            self.out_hidden = nn.Linear(c.hidden_size, c.embed_size)
            self.out_context = nn.Linear(d, c.embed_size)
            self.out = nn.Linear(c.embed_size, c.vocab_size)
        else:
            self.out = nn.Linear(c.hidden_size, c.vocab_size)

    # -- pieces ---------------------------------------------------------------------------------
    def _annotations(self, grid: torch.Tensor):
        a = self.feature_proj(grid.to(self.device).float())  # (B, L, d)
        mean = a.mean(1)
        h, c = torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))
        return a, self.att_features(a), h, c

    def _attend(self, a, att_a, h):
        scores = self.att_score(torch.tanh(att_a + self.att_hidden(h).unsqueeze(1))).squeeze(-1)  # (B, L)
        alpha = scores.softmax(-1)
        z = torch.bmm(alpha.unsqueeze(1), a).squeeze(1)
        if self.f_beta is not None:
            z = torch.sigmoid(self.f_beta(h)) * z
        return z, alpha

    def _logits(self, emb, h, z):
        if self.config.deep_output:
            return self.out(self.dropout(emb + self.out_hidden(h) + self.out_context(z)))
        return self.out(self.dropout(h))

    # -- training ---------------------------------------------------------------------------------
    def teacher_forced_loss(self, batch):
        feats = self.batch_features(batch)
        tokens = batch["tokens"].to(self.device)
        steps = (tokens[:, 1:] != PAD_ID).sum(1)  # words + <end> to predict per caption
        steps, order = steps.sort(descending=True)
        tokens = tokens[order]
        a, att_a, h, c = self._annotations(feats["grid"][order.to(feats["grid"].device)])
        b, n_loc = a.shape[:2]
        p = self.config.scheduled_sampling if self.training else 0.0
        alpha_sum = a.new_zeros(b, n_loc)
        logits_all, targets_all = [], []
        word = tokens[:, 0]
        sampled = None
        for t in range(int(steps[0])):
            active = int((steps > t).sum())  # captions still running (sorted: the first `active`)
            a, att_a, h, c, word = a[:active], att_a[:active], h[:active], c[:active], word[:active]
            if t > 0:
                word = tokens[:active, t]
                if p > 0:
                    use_model = torch.rand(active, device=word.device) < p
                    word = torch.where(use_model, sampled[:active], word)
            emb = self.embedding(word)
            z, alpha = self._attend(a, att_a, h)
            h, c = self.cell(torch.cat([emb, z], 1), (h, c))
            logits = self._logits(emb, h, z)
            if p > 0:
                sampled = torch.multinomial(logits.detach().softmax(-1), 1)[:, 0]
            alpha_sum = alpha_sum + nn.functional.pad(alpha, (0, 0, 0, b - active))
            logits_all.append(logits)
            targets_all.append(tokens[:active, t + 1])
        words = word_losses(self, torch.cat(logits_all), torch.cat(targets_all))
        att_reg = ((1.0 - alpha_sum) ** 2).mean()
        return {"loss": words["loss"] + self.config.alpha_c * att_reg, "nll": words["nll"], "att_reg": att_reg.detach()}

    # -- decoding ---------------------------------------------------------------------------------
    def init_decoder(self, features):
        a, att_a, h, c = self._annotations(features["grid"])
        return {"a": a, "att_a": att_a, "h": h, "c": c}

    def decode_step(self, tokens, state):
        emb = self.embedding(tokens)
        z, alpha = self._attend(state["a"], state["att_a"], state["h"])
        h, c = self.cell(torch.cat([emb, z], 1), (state["h"], state["c"]))
        log_probs = self._logits(emb, h, z).log_softmax(-1)
        return log_probs, {"a": state["a"], "att_a": state["att_a"], "h": h, "c": c}, alpha

    @torch.no_grad()
    def attention_weights(self, features, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced attention alpha (B, T, L) for ``tokens`` (``<start> ...``), e.g. to check
        that each step's weights sum to 1."""
        state = self.init_decoder(features)
        out = []
        for t in range(tokens.shape[1]):
            _, state, alpha = self.decode_step(tokens[:, t].to(self.device), state)
            out.append(alpha)
        return torch.stack(out, 1)
