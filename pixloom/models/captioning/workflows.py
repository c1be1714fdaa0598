"""What ``pixloom train``, ``pixloom eval`` and ``pixloom caption`` do for captioning models.

Training (cross-entropy or self-critical, from scratch, ``--init RUN`` or ``--resume``), scoring a
captioner with the COCO caption metrics, captioning image files, and drawing attention maps. The
models themselves are in :mod:`pixloom.models.captioning.base` and its subclasses.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import torch
from torch import nn

from pixloom.data.captions import Vocabulary
from pixloom.errors import PixloomError
from pixloom.models.base import with_weights_of
from pixloom.models.captioning.base import Captioner
from pixloom.models.captioning.decoding import Decoded


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
        optimizer=getattr(args, "optimizer", "adam"), ema_decay=getattr(args, "ema", 0.0),
    )
    info = {"model": model_cls.name, "data": data_name, "command": " ".join(["pixloom"] + sys.argv[1:]),
            "n_parameters": model.num_parameters(), "vocab_size": len(model.vocab),
            "train_images": len(train_set), "train_pairs": len(train_data), "valid_images": len(valid_set),
            "feature_seconds": round(feature_seconds, 1), "threads": torch.get_num_threads()}
    trainer = Trainer(model, train_data, valid_data, train_config, out, run_info=info)
    if trainer.world.is_main:
        print(f"training {model_cls.name} ({model.num_parameters():,} parameters, {len(model.vocab):,} words) on "
              f"{data_name}: {len(train_set):,} train images / {len(train_data):,} pairs, "
              f"{len(valid_set):,} valid images -> {out}", file=sys.stderr)
    summary = trainer.fit(resume=args.resume)
    if trainer.world.is_main:
        print(trainer.summary_line(summary))
    return 0


def initialised_from(model_cls, source, overrides: dict) -> Captioner:
    """A new model with the weights and vocabulary of the saved model ``source`` (``--init``), its
    config changed by ``overrides`` (training options such as ``scst_samples``; the weights must
    still fit)."""
    start = model_cls.from_pretrained(source)
    model = with_weights_of(start, overrides, source)
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
