"""Captioned images: tokenizer, vocabulary, image reading, a synthetic set and the training pairs.

>>> from pixloom.data.captions import Vocabulary, tokenize
>>> vocab = Vocabulary.build([tokenize("A dog runs ."), tokenize("A dog sits .")], min_count=2)
>>> vocab.decode(vocab.encode(tokenize("a dog jumps")))
'a dog <unk>'

A :class:`CaptionSet` is one split of a captioned data set (image paths or in-memory images plus
several reference captions per image); :class:`CaptionPairs` turns it into what the
:class:`~pixloom.training.trainer.Trainer` needs (``__len__`` and ``get_batch``), one item per
image-caption pair, each batch holding the image's cached features (or its pixels) and the padded
token ids.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pixloom.data.images import read_rgb
from pixloom.errors import DataError, PixloomError

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
PAD_ID, START_ID, END_ID, UNK_ID = 0, 1, 2, 3

_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case words and numbers; punctuation dropped ("A dog's ball." -> a dog s ball)."""
    return _WORD.findall(text.lower())


class Vocabulary:
    """Word <-> id map with ``<pad>`` 0, ``<start>`` 1, ``<end>`` 2 and ``<unk>`` 3."""

    def __init__(self, words: list[str], min_count: int = 1, counts: dict[str, int] | None = None):
        words = [w for w in words if w not in SPECIALS]
        self.itos = list(SPECIALS) + words
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise DataError("vocabulary words are not unique")
        self.min_count = min_count
        self.counts = counts or {}

    @classmethod
    def build(cls, captions: list[list[str]], min_count: int = 5) -> "Vocabulary":
        """Words seen at least ``min_count`` times in the (training) captions, most frequent first."""
        if min_count < 1:
            raise PixloomError(f"min_count must be at least 1, got {min_count}")
        counts = Counter(w for tokens in captions for w in tokens)
        kept = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIALS),
                      key=lambda w: (-counts[w], w))
        return cls(kept, min_count, {w: counts[w] for w in kept})

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def encode(self, tokens: list[str], add_start_end: bool = False) -> list[int]:
        ids = [self.stoi.get(w, UNK_ID) for w in tokens]
        return [START_ID] + ids + [END_ID] if add_start_end else ids

    def decode_ids(self, ids, keep_unk: bool = True) -> list[str]:
        """Ids -> words, stopping at ``<end>``; ``<pad>``/``<start>`` dropped."""
        words = []
        for i in ids:
            i = int(i)
            if i == END_ID:
                break
            if i in (PAD_ID, START_ID) or (i == UNK_ID and not keep_unk):
                continue
            words.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return words

    def decode(self, ids, keep_unk: bool = True) -> str:
        return " ".join(self.decode_ids(ids, keep_unk))

    def to_json(self) -> dict:
        return {"words": self.itos[len(SPECIALS):], "specials": list(SPECIALS), "min_count": self.min_count,
                "counts": [self.counts.get(w, 0) for w in self.itos[len(SPECIALS):]]}

    @classmethod
    def from_json(cls, obj) -> "Vocabulary":
        if not isinstance(obj, dict) or not isinstance(obj.get("words"), list):
            raise DataError("vocab.json is not a pixloom vocabulary (no 'words' list)")
        if obj.get("specials", list(SPECIALS)) != list(SPECIALS):
            raise DataError(f"vocab.json has special tokens {obj.get('specials')}, expected {list(SPECIALS)}")
        words = obj["words"]
        counts = dict(zip(words, obj.get("counts", [])))
        return cls(words, int(obj.get("min_count", 1)), counts)


def load_images(paths: list[Path], size: int) -> torch.Tensor:
    """Image files -> uint8 tensor (N, 3, size, size)."""
    out = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    for k, path in enumerate(paths):
        out[k] = torch.from_numpy(read_rgb(path, size)).permute(2, 0, 1)
    return out


# -- one split of a captioned data set -----------------------------------------------------------------
@dataclass
class CaptionSet:
    """One split: image ids, where the images are (or the images themselves) and their captions.

    ``captions[i]`` are the raw reference sentences of image ``i`` (what the COCO metrics score
    against); ``tokens[i]`` the same sentences tokenized for training.
    """

    name: str
    split: str
    image_ids: list[str]
    captions: list[list[str]]
    tokens: list[list[list[str]]]
    image_paths: list[Path] | None = None
    images: torch.Tensor | None = None  # uint8 (N, 3, S, S) for in-memory (synthetic) sets
    dropped: int = 0  # caption lines whose image file is missing
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        n = len(self.image_ids)
        if len(self.captions) != n or len(self.tokens) != n:
            raise ValueError("image_ids, captions and tokens differ in length")
        if self.image_paths is not None and len(self.image_paths) != n:
            raise ValueError("image_paths and image_ids differ in length")

    def __len__(self) -> int:
        return len(self.image_ids)

    def subset(self, limit: int | None) -> "CaptionSet":
        if limit is None or limit >= len(self):
            return self
        return CaptionSet(self.name, self.split, self.image_ids[:limit], self.captions[:limit], self.tokens[:limit],
                          None if self.image_paths is None else self.image_paths[:limit],
                          None if self.images is None else self.images[:limit], self.dropped, list(self.notes))

    def all_tokens(self) -> list[list[str]]:
        return [t for per_image in self.tokens for t in per_image]

    def pixels(self, size: int) -> torch.Tensor:
        """uint8 (N, 3, size, size), read from disk (or resized from the in-memory images)."""
        if self.images is not None:
            if self.images.shape[-1] == size and self.images.shape[-2] == size:
                return self.images
            resized = torch.nn.functional.interpolate(self.images.float(), size=(size, size), mode="bilinear",
                                                      align_corners=False)
            return resized.round().clamp(0, 255).to(torch.uint8)
        if self.image_paths is None:
            raise DataError(f"{self.name} {self.split} has neither images nor image paths")
        return load_images(self.image_paths, size)


class CaptionPairs:
    """Trainer data: every (image, caption) pair of a :class:`CaptionSet`.

    ``sources`` maps batch keys to per-image tensors: cached encoder features (``"global"`` (N, D),
    ``"grid"`` (N, L, D), stored float16 and returned float32) or pixels (``"image"`` uint8). Each
    batch also holds ``"tokens"``: ``<start> w1 .. wn <end>`` padded with ``<pad>`` (0) to the
    longest caption in the batch. Captions longer than ``max_words`` are left out of training
    (an image whose captions are all longer keeps its shortest, cut to ``max_words``). Batches also
    carry ``"image_index"`` (which image of ``data`` each row shows). ``one_per_image``: only the
    first kept caption of each image (an epoch then visits each image once, as self-critical training wants).

    Mirror augmentation (training data only): with ``mirror_augment = p > 0`` each pair of a batch,
    with probability p, shows the left-right mirrored image (``mirrored`` holds its sources: the
    cached features of the flipped images; pixels are flipped here) and its caption with "left" and
    "right" swapped. The draws use torch's global generator, which the Trainer seeds and checkpoints.
    """

    def __init__(self, data: CaptionSet, vocab: Vocabulary, sources: dict[str, torch.Tensor], max_words: int = 22,
                 one_per_image: bool = False, mirror_augment: float = 0.0,
                 mirrored: dict[str, torch.Tensor] | None = None):
        for key, value in {**sources, **(mirrored or {})}.items():
            if len(value) != len(data):
                raise ValueError(f"source '{key}' has {len(value)} rows for {len(data)} images")
        if not 0.0 <= mirror_augment <= 1.0:
            raise PixloomError(f"mirror_augment must lie in [0, 1], got {mirror_augment}")
        missing = [k for k in sources if k != "image" and k not in (mirrored or {})]
        if mirror_augment > 0 and missing:
            raise PixloomError(f"mirror_augment needs the mirrored images' cached features ({', '.join(missing)})")
        self.mirror_augment = mirror_augment
        self.mirrored = mirrored or {}
        left, right = vocab.stoi.get("left"), vocab.stoi.get("right")
        self.swap = (left, right) if left is not None and right is not None else None
        rows, owners = [], []
        for i, per_image in enumerate(data.tokens):
            kept = [t for t in per_image if 0 < len(t) <= max_words]
            if not kept and per_image:
                kept = [min(per_image, key=len)[:max_words]]
            if one_per_image:
                kept = kept[:1]
            for t in kept:
                rows.append(vocab.encode(t, add_start_end=True))
                owners.append(i)
        width = max((len(r) for r in rows), default=2)
        tokens = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
        for k, r in enumerate(rows):
            tokens[k, :len(r)] = torch.tensor(r)
        self.tokens = tokens
        self.lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
        self.owner = torch.tensor(owners, dtype=torch.long)
        self.sources = sources
        self.data = data

    def __len__(self) -> int:
        return len(self.tokens)

    def get_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        indices = torch.as_tensor(indices, dtype=torch.long)
        width = int(self.lengths[indices].max())
        owners = self.owner[indices]
        batch = {"tokens": self.tokens[indices, :width], "image_index": owners}
        flip = torch.rand(len(indices)) < self.mirror_augment if self.mirror_augment > 0 else None
        for key, value in self.sources.items():
            part = value[owners]
            if flip is not None:
                shape = (-1,) + (1,) * (part.dim() - 1)
                other = part.flip(-1) if key == "image" else self.mirrored[key][owners]
                part = torch.where(flip.view(shape), other, part)
            batch[key] = part.float() if part.is_floating_point() else part
        if flip is not None and self.swap is not None:
            tokens, (left, right) = batch["tokens"], self.swap
            swapped = torch.where(tokens == left, right, torch.where(tokens == right, left, tokens))
            batch["tokens"] = torch.where(flip[:, None], swapped, tokens)
        return batch


# -- a synthetic captioned set for fast tests ------------------------------------------------------------
SYNTH_COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 230)}
SYNTH_SHAPES = ("square", "circle", "triangle")
SYNTH_PLACES = ("left", "right")
SYNTH_TEMPLATES = ("a {color} {shape} on the {place}", "a {color} {shape} is on the {place}",
                   "there is a {color} {shape} on the {place}")


def synthetic_captions(n: int = 200, size: int = 32, seed: int = 0, split: str = "train") -> CaptionSet:
    """Rendered shapes with templated captions ("a red circle on the left", ...).

    One shape (square, circle or triangle) of one colour in the left or right half of a grey
    ``size`` x ``size`` picture with a little noise; three template captions per image. Pure
    function of (n, size, seed, split).
    """
    offset = {"train": 0, "valid": 1, "dev": 1, "val": 1, "test": 2}.get(split, 3)
    g = np.random.default_rng(seed * 10 + offset)
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    ids, captions, tokens = [], [], []
    names = list(SYNTH_COLORS)
    for k in range(n):
        color = names[g.integers(len(names))]
        shape = SYNTH_SHAPES[g.integers(len(SYNTH_SHAPES))]
        place = SYNTH_PLACES[g.integers(len(SYNTH_PLACES))]
        half = size // 2
        r = size / 6 + g.uniform(-1, 1) * size / 32
        cx = (half / 2 if place == "left" else half + half / 2) + g.uniform(-1, 1) * size / 16
        cy = size / 2 + g.uniform(-1, 1) * size / 8
        if shape == "square":
            mask = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r)
        elif shape == "circle":
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= (r * 1.1) ** 2
        else:
            mask = (yy >= cy - r) & (yy <= cy + r) & (np.abs(xx - cx) <= (yy - (cy - r)) / 2 * 1.15)
        picture = np.full((size, size, 3), 128.0) + g.normal(0, 8, (size, size, 3))
        picture[mask] = np.array(SYNTH_COLORS[color]) + g.normal(0, 8, (int(mask.sum()), 3))
        images[k] = np.clip(picture, 0, 255).astype(np.uint8).transpose(2, 0, 1)
        sentences = [t.format(color=color, shape=shape, place=place) for t in SYNTH_TEMPLATES]
        ids.append(f"synthetic-{split}-{k:05d}")
        captions.append(sentences)
        tokens.append([tokenize(s) for s in sentences])
    return CaptionSet("synthetic", split, ids, captions, tokens, images=torch.from_numpy(images))
