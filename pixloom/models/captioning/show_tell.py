"""Show and Tell: a CNN image vector fed to an LSTM language model.

Vinyals, Toshev, Bengio and Erhan (2015), "Show and Tell: A Neural Image Caption Generator", CVPR.
The image's global feature, projected to the word-embedding size, is the LSTM's input at step -1
(``image_as="input"``, as in the paper) or sets its initial state (``image_as="state"``); then
``<start> w1 .. wn`` are fed with teacher forcing and the LSTM predicts ``w1 .. wn <end>``:

    x_-1 = W_i CNN(I),  x_t = W_e S_t,  p_t+1 = softmax(W_o dropout(LSTM(x_t)))

Optional scheduled sampling (Bengio et al. 2015) feeds, with probability ``scheduled_sampling``, a
word sampled from the model's own previous prediction instead of the true one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pixloom.data.captions import PAD_ID
from pixloom.errors import PixloomError
from pixloom.models.captioning.base import Captioner, CaptionerConfig, word_losses


@dataclass
class ShowTellConfig(CaptionerConfig):
    image_as: str = "input"  # input (image vector at step -1, as in the paper) | state (initial h, c)
    embed_size: int = 512
    hidden_size: int = 512
    num_layers: int = 1
    dropout: float = 0.5


class ShowTell(Captioner):
    name = "show-tell"
    config_class = ShowTellConfig
    summary = "Show and Tell captioner (Vinyals et al. 2015): image vector -> LSTM, beam search"
    feature_keys = ("global",)

    def __init__(self, config: ShowTellConfig):
        super().__init__(config)
        if config.image_as not in ("input", "state"):
            raise PixloomError(f"image_as must be 'input' or 'state', got '{config.image_as}'")
        h, e, layers = config.hidden_size, config.embed_size, config.num_layers
        self.embedding = nn.Embedding(config.vocab_size, e, padding_idx=PAD_ID)
        if config.image_as == "input":
            self.image_proj = nn.Linear(self.feature_size, e)
        else:
            self.init_h = nn.Linear(self.feature_size, h * layers)
            self.init_c = nn.Linear(self.feature_size, h * layers)
        self.lstm = nn.LSTM(e, h, num_layers=layers, batch_first=True, dropout=config.dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(h, config.vocab_size)

    def _initial(self, image: torch.Tensor):
        """Global image features (B, D) -> LSTM state ((layers, B, H), (layers, B, H))."""
        c = self.config
        b = image.shape[0]
        if c.image_as == "input":
            x = self.dropout(self.image_proj(image)).unsqueeze(1)
            _, state = self.lstm(x)
            return state
        h0 = torch.tanh(self.init_h(image)).view(b, c.num_layers, -1).transpose(0, 1).contiguous()
        c0 = torch.tanh(self.init_c(image)).view(b, c.num_layers, -1).transpose(0, 1).contiguous()
        return h0, c0

    def teacher_forced_loss(self, batch):
        feats = self.batch_features(batch)
        tokens = batch["tokens"].to(self.device)
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        state = self._initial(feats["global"])
        if self.training and self.config.scheduled_sampling > 0:
            logits = self._scheduled(inputs, state)
        else:
            lengths = (targets != PAD_ID).sum(1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(self.embedding(inputs), lengths, batch_first=True,
                                                       enforce_sorted=False)
            hidden, _ = self.lstm(packed, state)
            hidden, _ = nn.utils.rnn.pad_packed_sequence(hidden, batch_first=True, total_length=inputs.shape[1])
            logits = self.out(self.dropout(hidden))
        return word_losses(self, logits, targets)

    def _scheduled(self, inputs: torch.Tensor, state) -> torch.Tensor:
        p = self.config.scheduled_sampling
        word = sampled = inputs[:, 0]
        outputs = []
        for t in range(inputs.shape[1]):
            if t > 0:
                use_model = torch.rand(word.shape[0], device=word.device) < p
                word = torch.where(use_model, sampled, inputs[:, t])
            hidden, state = self.lstm(self.embedding(word).unsqueeze(1), state)
            logits = self.out(self.dropout(hidden[:, 0]))
            sampled = torch.multinomial(logits.detach().softmax(-1), 1)[:, 0]
            outputs.append(logits)
        return torch.stack(outputs, 1)

    # -- decoding --------------------------------------------------------------------------------
    def init_decoder(self, features):
        h, c = self._initial(features["global"].to(self.device).float())
        return {"h": h.transpose(0, 1).contiguous(), "c": c.transpose(0, 1).contiguous()}  # batch first

    def decode_step(self, tokens, state):
        h, c = state["h"].transpose(0, 1).contiguous(), state["c"].transpose(0, 1).contiguous()
        hidden, (h, c) = self.lstm(self.embedding(tokens).unsqueeze(1), (h, c))
        log_probs = self.out(hidden[:, 0]).log_softmax(-1)
        return log_probs, {"h": h.transpose(0, 1), "c": c.transpose(0, 1)}, None
