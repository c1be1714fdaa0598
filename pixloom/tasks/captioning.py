"""Captioning tasks: caption photos (with attention maps), score a captioner on a captioned data set
with the COCO caption metrics, join captioners into an ensemble, and the data a captioner trains on."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from pixloom.data.captions import CaptionPairs, CaptionSet
from pixloom.data.features import cached_features
from pixloom.data.registry import dataset_kind, load_dataset
from pixloom.errors import ArgumentError, PixloomError
from pixloom.metrics.captions import METRIC_KEYS, corpus_bleu4, require_caption_metrics, score_captions
from pixloom.models.capabilities import Captioning
from pixloom.models.captioning.base import CaptionDecoder, Captioner
from pixloom.models.captioning.ensemble import CaptionEnsemble
from pixloom.tasks.common import check_positive_int, ensure_writable_dir, load_model, output_path, require


def data_sources(model: CaptionDecoder, data: CaptionSet, cache_dir=None, progress: bool = True,
                 mirrored: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """What batches of ``data`` carry for ``model``: cached features for a frozen encoder, else
    pixels; and with ``mirrored`` the features of the left-right mirrored images (for mirror
    augmentation; pixels are flipped on the fly)."""
    if model.trainable_encoder:
        return {"image": data.pixels(model.image_size)}, {}
    encoder = model.image_encoder()
    features = cached_features(model.config.encoder, data, encoder, cache_dir, progress=progress, device=model.device)
    sources = {k: features[k] for k in model.feature_keys}
    flipped = {}
    if mirrored:
        flipped = cached_features(model.config.encoder, data, encoder, cache_dir, progress=progress,
                                  device=model.device, mirror=True)
        flipped = {k: flipped[k] for k in model.feature_keys}
    return sources, flipped


def caption_dataset(model: CaptionDecoder, data: CaptionSet, sources: dict[str, torch.Tensor], beam: int = 3,
                    batch_size: int = 50, max_len: int = 20, length_penalty: float | None = None,
                    progress: bool = True) -> list[str]:
    """One caption per image of ``data``, decoded from ``sources`` in batches."""
    from tqdm.auto import tqdm

    out = []
    for start in tqdm(range(0, len(data), batch_size), desc=f"captioning {data.split}", unit="batch",
                      disable=not progress, dynamic_ncols=True):
        part = {k: v[start:start + batch_size] for k, v in sources.items()}
        if "image" in part:
            out += model.caption(part["image"], beam=beam, max_len=max_len, length_penalty=length_penalty)
        else:
            out += model.caption(features=part, beam=beam, max_len=max_len, length_penalty=length_penalty)
    return out


def bleu_scorer(beam: int):
    """The Trainer's validation scorer of a captioner: dev BLEU-4 of beam-``beam`` captions."""

    @torch.no_grad()
    def score(model: CaptionDecoder, pairs: CaptionPairs) -> dict[str, float]:
        captions = caption_dataset(model, pairs.data, pairs.sources, beam=beam, batch_size=100, progress=False)
        bleu = corpus_bleu4(pairs.data.tokens, captions)
        return {} if bleu is None else {"bleu4": bleu}

    return score


def caption(model, images, beam: int = 3, max_len: int = 20, length_penalty: float | None = None,
            allow_unk: bool = False, attention_map=None, device: str = "cpu") -> list[str]:
    """Caption photos: file paths, PIL images or uint8 tensors. ``attention_map``: a PNG path for
    the per-word attention over the photo (a show-attend-tell model; with several photos, ``-1``,
    ``-2``, ... is added to the name)."""
    source = model if not isinstance(model, CaptionDecoder) else None
    model = require(load_model(model, device), Captioning, source)
    check_positive_int(beam, "beam")
    check_positive_int(max_len, "max_len")
    items = images if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise ArgumentError("images", "is empty: give at least one photo")
    targets = []
    if attention_map is not None:
        if not model.has_attention:
            raise ArgumentError("attention_map", f"needs a model with attention (show-attend-tell); {model.name} has none")
        target = output_path(attention_map, "attention_map")
        targets = [target if len(items) == 1 else target.with_name(f"{target.stem}-{k + 1}{target.suffix or '.png'}")
                   for k in range(len(items))]
    pictures = model.prepare_images(list(items))  # every file is checked before any work
    decoded = model.decode(pictures, beam=beam, max_len=max_len, length_penalty=length_penalty, allow_unk=allow_unk)
    captions = [model.vocab.decode(t) for t in decoded.tokens]
    if targets:
        from pixloom.viz import attention_figure

        for k, target in enumerate(targets):
            words = model.vocab.decode_ids(decoded.tokens[k])
            attention_figure(pictures[k], words, decoded.attention[k], target)
    return captions


def evaluate_captioner(model: CaptionDecoder, data: str, split: str = "dev", data_dir=None, limit: int | None = None,
                       beam: int = 3, length_penalty: float | None = None, batch_size: int = 100, cache_dir=None,
                       captions_out=None, progress: bool = True, source=None) -> dict:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr (and SPICE when its models are installed) of the model's
    captions of a captioned data set's split; ``captions_out`` also writes the captions as JSON."""
    if dataset_kind(data) != "captions":
        raise ArgumentError("data", f"'{data}' holds images without captions; a captioner is scored on "
                            "captioned data (flickr8k, flickr8k-karpathy, flickr30k, coco)")
    check_positive_int(beam, "beam")
    if captions_out is not None:
        captions_out = output_path(captions_out, "captions_out", (".json",))
    require_caption_metrics()  # fail before the slow part
    split = {"valid": "dev", "val": "dev"}.get(split, split)
    dataset = load_dataset(data, split, data_dir, image_size=model.config.small_cnn_image_size).subset(limit)
    started = time.perf_counter()
    sources, _ = data_sources(model, dataset, cache_dir, progress)
    if length_penalty is None:
        length_penalty = model.config.length_penalty
    captions = caption_dataset(model, dataset, sources, beam=beam, batch_size=min(batch_size, 100),
                               length_penalty=length_penalty, progress=progress)
    seconds = time.perf_counter() - started
    scores = score_captions(dict(zip(dataset.image_ids, dataset.captions)), dict(zip(dataset.image_ids, captions)))
    result = {k: round(scores[k], 4) for k in METRIC_KEYS}
    if "spice" in scores:
        result["spice"] = round(scores["spice"], 4)
    result.update({"n_images": scores["n_images"], "model": model.name, "run": str(source), "data": data,
                   "split": split, "beam": beam, "length_penalty": length_penalty, "caption_seconds": round(seconds, 2)})
    if scores["notes"] or dataset.notes:
        result["notes"] = dataset.notes + scores["notes"]
    if captions_out is not None:  # the figures are never lost to a failed write of the captions
        from pixloom.io import atomic_write_json

        try:
            atomic_write_json(captions_out, [{"image": i, "caption": c, "references": r}
                                             for i, c, r in zip(dataset.image_ids, captions, dataset.captions)])
        except OSError as exc:
            result["failed"] = f"could not write the captions to {captions_out}: {exc.strerror or exc}"
    return result


def build_ensemble(runs, out, length_penalty: float | None = None, dtype: str | None = None,
                   force: bool = False) -> CaptionEnsemble:
    """Join trained captioners (same vocabulary and encoder) into one model saved in ``out``, whose
    word distribution is the mean of theirs. ``dtype``: None (float32), ``"float16"`` or ``"int8"``."""
    if isinstance(runs, (str, Path)) or len(runs) < 2:
        raise ArgumentError("runs", "must list at least two trained captioners")
    if dtype not in (None, "float16", "int8"):
        raise ArgumentError("dtype", f"must be float16, int8 or None, got {dtype!r}")
    out = Path(out)
    if (out / "config.json").exists() and not force:
        raise PixloomError(f"{out} already holds a model; pass force to replace it")
    ensure_writable_dir(out, "out")
    members = []
    for run in runs:
        model = load_model(run)
        if not isinstance(model, Captioner):
            raise PixloomError(f"'{run}' is a {model.name} model; only trained captioners can be joined")
        members.append(model)
    ensemble = CaptionEnsemble.from_members(members)
    if length_penalty is not None:
        if not length_penalty >= 0:
            raise ArgumentError("length_penalty", f"must be at least 0, got {length_penalty}")
        ensemble.config.length_penalty = length_penalty
    ensemble.save_pretrained(out, dtype={"int8": torch.int8, "float16": torch.float16}.get(dtype))
    return ensemble
