"""An ensemble of captioners that decode together: at every step the members' word distributions
are averaged (the mean of their probabilities), and greedy decoding or beam search runs on that.

Averaging independently trained decoders is how the captioning papers report their best numbers:
Vinyals et al. (2015), "Show and Tell: A Neural Image Caption Generator", CVPR, Sec. 4.3.1
("ensembling ... improves BLEU by a few points"); Xu et al. (2015) trained single models. The
members must share the vocabulary and the image encoder (one encoder pass feeds all of them).
An ensemble is saved like any model (``config.json`` lists the members' configs, one
``model.safetensors`` holds their weights under ``members.<i>.``) and is built from trained runs
with ``pixloom ensemble RUN RUN [...] --out DIR``; it is not trained itself.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from pixloom.errors import PixloomError
from pixloom.models.base import config_from_dict
from pixloom.models.captioning.base import CaptionDecoder, Captioner, CaptionerConfig
from pixloom.models.captioning.show_attend_tell import ShowAttendTell
from pixloom.models.captioning.show_tell import ShowTell

MEMBER_KINDS: dict[str, type[Captioner]] = {ShowTell.name: ShowTell, ShowAttendTell.name: ShowAttendTell}


@dataclass
class CaptionEnsembleConfig(CaptionerConfig):
    members: list = field(default_factory=list)  # [{"model": "show-attend-tell", "config": {...}}, ...]


class CaptionEnsemble(CaptionDecoder):
    """Not trainable itself (it has no ``loss``): train the members, then join them."""

    name = "caption-ensemble"
    config_class = CaptionEnsembleConfig
    summary = "several trained captioners decoding together (mean of their word probabilities)"

    def __init__(self, config: CaptionEnsembleConfig):
        super().__init__(config)
        if len(config.members) < 2:
            raise PixloomError("an ensemble needs at least two members")
        members = []
        for spec in config.members:
            if not isinstance(spec, dict) or spec.get("model") not in MEMBER_KINDS or "config" not in spec:
                got = spec.get("model") if isinstance(spec, dict) else spec
                raise PixloomError(f"an ensemble member must be one of {', '.join(MEMBER_KINDS)}, got {got!r}")
            cls = MEMBER_KINDS[spec["model"]]
            member = cls(config_from_dict(cls.config_class, spec["config"]))
            if member.config.vocab_size != config.vocab_size or member.config.encoder != config.encoder:
                raise PixloomError("ensemble members must share the vocabulary and the image encoder")
            if member.trainable_encoder:
                raise PixloomError("ensemble members must use a frozen pretrained encoder (one pass feeds all)")
            members.append(member)
        self.members = nn.ModuleList(members)
        self.has_attention = any(m.has_attention for m in members)
        self.feature_keys = tuple(sorted({k for m in members for k in m.feature_keys}))

    @classmethod
    def from_members(cls, models: list[Captioner]) -> CaptionEnsemble:
        """An ensemble of trained captioners (same vocabulary and encoder), weights copied."""
        if len(models) < 2:
            raise PixloomError("an ensemble needs at least two members")
        for model in models:
            if not isinstance(model, Captioner):
                raise PixloomError(f"only trained captioners can be joined, not a {model.name} model")
        first = models[0]
        for other in models[1:]:
            if other.vocab is None or first.vocab is None or other.vocab.itos != first.vocab.itos:
                raise PixloomError("ensemble members must be trained with the same vocabulary (same data and min_count)")
        specs = [{"model": m.name, "config": dataclasses.asdict(m.config)} for m in models]
        shared = {f.name: getattr(first.config, f.name) for f in dataclasses.fields(CaptionerConfig)}
        ensemble = cls(CaptionEnsembleConfig(**shared, members=specs))
        for target, source in zip(ensemble.members, models):
            target.load_state_dict(source.state_dict())
        ensemble.set_vocab(first.vocab)
        return ensemble.eval()

    def set_vocab(self, vocab) -> None:
        super().set_vocab(vocab)
        for member in self.members:
            member.set_vocab(vocab)

    # -- decoding: one state per member, probabilities averaged ------------------------------------
    def init_decoder(self, features):
        state = {}
        for i, member in enumerate(self.members):
            state.update({f"{i}.{k}": v for k, v in member.init_decoder(features).items()})
        return state

    def decode_step(self, tokens, state):
        log_probs, attentions, new_state = [], [], {}
        for i, member in enumerate(self.members):
            prefix = f"{i}."
            own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            lp, own, att = member.decode_step(tokens, own)
            log_probs.append(lp)
            if att is not None:
                attentions.append(att)
            new_state.update({prefix + k: v for k, v in own.items()})
        mean = torch.logsumexp(torch.stack(log_probs), 0) - math.log(len(log_probs))  # log of the mean probability
        attention = torch.stack(attentions).mean(0) if attentions else None
        return mean, new_state, attention
