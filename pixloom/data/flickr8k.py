"""Captioned data sets: Flickr8k (official files) and Karpathy's split JSON (COCO, Flickr8k, Flickr30k).

Flickr8k: Hodosh, Young and Hockenmaier (2013), "Framing Image Description as a Ranking Task: Data,
Models and Evaluation Metrics", JAIR 47. Layout of the official distribution (``--data-dir`` is the
folder that holds these, or the two sub-folders' contents directly)::

    Flicker8k_Dataset/<id>.jpg                   the photos (also accepted: Flickr8k_Dataset/, images/)
    Flickr8k_text/Flickr8k.token.txt             <id>.jpg#<0-4><TAB><caption>
    Flickr8k_text/Flickr_8k.{train,dev,test}Images.txt   one <id>.jpg per line

Loading one split needs only that split's list, the token file and that split's photos; caption
lines whose photo is missing are dropped and counted (``CaptionSet.dropped``).

Karpathy's splits (Karpathy and Fei-Fei 2015): ``dataset_coco.json``, ``dataset_flickr8k.json``,
``dataset_flickr30k.json`` with ``images[].filename``, ``.filepath`` (COCO), ``.split``
(train/restval/val/test) and ``.sentences[].tokens`` / ``.raw``. ``restval`` joins ``train``.

>>> from pixloom.data import load_dataset
>>> dev = load_dataset("flickr8k", "dev", "../shared/data/flickr8k")   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

from pixloom.data.captions import CaptionSet, synthetic_captions, tokenize
from pixloom.data.root import resolve_data_dir
from pixloom.errors import DataError, arg

CAPTION_DATASETS = ("flickr8k", "flickr8k-karpathy", "flickr30k", "coco", "synthetic")  # pixloom.data.registry describes them

# split names accepted on the command line -> the official Flickr8k list / Karpathy split names
SPLIT_ALIASES = {"train": "train", "dev": "dev", "valid": "dev", "val": "dev", "test": "test"}
FLICKR8K_LISTS = {"train": "Flickr_8k.trainImages.txt", "dev": "Flickr_8k.devImages.txt",
                  "test": "Flickr_8k.testImages.txt"}
KARPATHY_SPLITS = {"train": ("train", "restval"), "dev": ("val",), "test": ("test",)}
KARPATHY_FILES = {"flickr8k-karpathy": "dataset_flickr8k.json", "flickr30k": "dataset_flickr30k.json",
                  "coco": "dataset_coco.json"}
_IMAGE_FOLDERS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "flickr8k_dataset", "Images", "images",
                  "flickr30k-images", "flickr30k_images")


def canonical_split(split: str) -> str:
    try:
        return SPLIT_ALIASES[split]
    except KeyError:
        raise DataError(f"unknown split {split!r}: choose one of train, dev (valid), test") from None


def _first_existing(candidates: list[Path]) -> Path | None:
    return next((p for p in candidates if p.exists()), None)


def load_flickr8k(root: str | Path, split: str) -> CaptionSet:
    """One split of Flickr8k from the official files under ``root``."""
    root = Path(root).expanduser()
    split = canonical_split(split)
    if not root.is_dir():
        raise DataError(f"Flickr8k folder not found: {root} (pass {arg('data_dir')}, the folder with "
                        "Flicker8k_Dataset/ and Flickr8k_text/)")
    text_dir = _first_existing([root / "Flickr8k_text", root / "Flickr8k_text" / "Flickr8k_text", root]) or root
    list_name = FLICKR8K_LISTS[split]
    split_list = _first_existing([text_dir / list_name, root / list_name])
    if split_list is None:
        raise DataError(f"Flickr8k {split} split list {list_name} not found in {text_dir}")
    token_file = _first_existing([text_dir / "Flickr8k.token.txt", root / "Flickr8k.token.txt"])
    if token_file is None:
        raise DataError(f"Flickr8k captions Flickr8k.token.txt not found in {text_dir}")
    image_dir = _first_existing([root / d for d in _IMAGE_FOLDERS]) or root
    wanted = [line.strip() for line in split_list.read_text(encoding="utf-8").splitlines() if line.strip()]
    wanted_set = set(wanted)
    captions: dict[str, list[str]] = {}
    for number, line in enumerate(token_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line or "#" not in line.split("\t", 1)[0]:
            raise DataError(f"{token_file}:{number}: expected '<image>.jpg#<n><TAB><caption>'")
        key, sentence = line.split("\t", 1)
        image = key.rsplit("#", 1)[0]
        if image in wanted_set:
            captions.setdefault(image, []).append(sentence.strip())
    ids, paths, refs, dropped, missing_images = [], [], [], 0, 0
    for image in wanted:
        sentences = captions.get(image)
        if not sentences:
            continue
        path = image_dir / image
        if not path.is_file():
            dropped += len(sentences)
            missing_images += 1
            continue
        ids.append(image)
        paths.append(path)
        refs.append(sentences)
    if not ids:
        raise DataError(f"no Flickr8k {split} images found in {image_dir} "
                        f"({len(wanted)} listed in {split_list.name}, {dropped} caption lines dropped)")
    notes = []
    if dropped:
        notes.append(f"dropped {dropped} caption lines of {missing_images} missing {split} images in {image_dir}")
    return CaptionSet("flickr8k", split, ids, refs, [[tokenize(s) for s in r] for r in refs], paths,
                      dropped=dropped, notes=notes)


def load_karpathy(json_path: str | Path, split: str, image_root: str | Path | None = None,
                  name: str | None = None) -> CaptionSet:
    """One split from a Karpathy split JSON; images at ``image_root/filepath/filename``."""
    json_path = Path(json_path).expanduser()
    split = canonical_split(split)
    if not json_path.is_file():
        raise DataError(f"Karpathy split file not found: {json_path}")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
        images = data["images"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{json_path} is not a Karpathy split file ({type(exc).__name__})") from None
    root = Path(image_root).expanduser() if image_root else json_path.parent
    name = name or str(data.get("dataset") or json_path.stem.replace("dataset_", ""))
    wanted = KARPATHY_SPLITS[split]
    folders = [root] + [root / d for d in _IMAGE_FOLDERS]
    ids, paths, refs, toks, dropped, missing = [], [], [], [], 0, 0
    for entry in images:
        if entry.get("split") not in wanted:
            continue
        filename = entry["filename"]
        sentences = entry.get("sentences", [])
        candidates = [f / entry["filepath"] / filename for f in folders if entry.get("filepath")]
        candidates += [f / filename for f in folders]
        path = _first_existing(candidates)
        if path is None or not path.is_file():
            dropped += len(sentences)
            missing += 1
            continue
        raw = [s.get("raw") or " ".join(s.get("tokens", [])) for s in sentences]
        tokens = [[w.lower() for w in s["tokens"]] if s.get("tokens") else tokenize(r) for s, r in zip(sentences, raw)]
        ids.append(str(entry.get("cocoid", entry.get("imgid", filename))) if name == "coco" else filename)
        paths.append(path)
        refs.append([r.strip() for r in raw])
        toks.append(tokens)
    if not ids:
        raise DataError(f"no {split} images of {json_path.name} found under {root} ({dropped} captions dropped)")
    notes = [f"dropped {dropped} captions of {missing} missing {split} images under {root}"] if dropped else []
    return CaptionSet(name, split, ids, refs, toks, paths, dropped=dropped, notes=notes)


def load_caption_dataset(name: str, split: str, data_dir: str | Path | None = None,
                         synthetic_size: int = 32) -> CaptionSet:
    """Load ``split`` (train, dev/valid, test) of the captioned data set ``name`` (see CAPTION_DATASETS).

    ``data_dir``: the data set's own folder (default ``$PIXLOOM_DATA/<name>``). For Karpathy
    sets it holds the JSON and the images (COCO: ``train2014/``, ``val2014/``); a path to the
    JSON itself is accepted too.
    """
    split = canonical_split(split)
    if name == "synthetic":
        return synthetic_captions(n={"train": 400, "dev": 60, "test": 60}[split], size=synthetic_size, split=split)
    if name not in CAPTION_DATASETS:
        raise DataError(f"unknown captioned data set {name!r}: choose one of {', '.join(CAPTION_DATASETS)}")
    root = Path(data_dir).expanduser() if data_dir else resolve_data_dir(None) / name
    if name == "flickr8k":
        return load_flickr8k(root, split)
    filename = KARPATHY_FILES[name]
    if root.is_file():
        return load_karpathy(root, split, root.parent, name=name.replace("-karpathy", ""))
    json_path = _first_existing([root / filename, root / "karpathy" / filename]) or root / filename
    return load_karpathy(json_path, split, root, name=name.replace("-karpathy", ""))
