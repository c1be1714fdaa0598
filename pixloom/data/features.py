"""The on-disk cache of image-encoder features for caption data sets.

A frozen pretrained encoder (:mod:`pixloom.nn.image_encoders`) sees every training image once: its
features are stored beside the data (``<data root>/features``) and decoder training reads features
only. Files: ``<cache_dir>/<encoder>-<data>-<split>-<n>-<hash of the ids>.safetensors`` (float16
``global`` and ``grid``) and ``.json`` (encoder, image ids, seconds it took); ``-mirror`` is appended
to the name for the left-right mirrored images. No pickles.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch

from pixloom.io import atomic_save_tensors, atomic_write_json, load_tensors, read_json


def default_cache_dir() -> Path:
    from pixloom.data.root import resolve_data_dir

    return resolve_data_dir(None) / "features"


def _cache_stem(encoder_name: str, data, mirror: bool = False) -> str:
    digest = hashlib.sha1("\n".join(data.image_ids).encode("utf-8")).hexdigest()[:10]
    return f"{encoder_name}-{data.name}-{data.split}-{len(data)}-{digest}" + ("-mirror" if mirror else "")


@torch.no_grad()
def compute_features(encoder, data, batch_size: int = 32, progress: bool = True,
                     device: torch.device | str = "cpu", mirror: bool = False) -> dict[str, torch.Tensor]:
    """Run ``encoder`` (uint8 (B, 3, S, S) -> (global, grid)) over every image of a CaptionSet:
    {"global": (N, D), "grid": (N, L, D)} float16. ``mirror``: of the left-right mirrored images."""
    from tqdm.auto import tqdm

    from pixloom.data.captions import load_images

    encoder = encoder.to(device).eval()
    globals_, grids = [], []
    bar = tqdm(total=len(data), desc=f"features {data.name} {data.split}{' mirrored' if mirror else ''}",
               unit="img", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(data), batch_size):
        stop = min(start + batch_size, len(data))
        if data.images is not None:
            images = data.pixels(encoder.image_size)[start:stop]
        else:
            images = load_images(data.image_paths[start:stop], encoder.image_size)
        if mirror:
            images = images.flip(-1)
        g, grid = encoder(images.to(device))
        globals_.append(g.half().cpu())
        grids.append(grid.half().cpu())
        bar.update(stop - start)
    bar.close()
    return {"global": torch.cat(globals_), "grid": torch.cat(grids)}


def cached_features(encoder_name: str, data, encoder, cache_dir: str | Path | None = None, batch_size: int = 32,
                    progress: bool = True, device="cpu", mirror: bool = False) -> dict[str, torch.Tensor]:
    """Features of every image of ``data`` by ``encoder`` (named ``encoder_name``), read from the
    cache or computed once and stored there."""
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    stem = _cache_stem(encoder_name, data, mirror)
    tensors_path, meta_path = cache / f"{stem}.safetensors", cache / f"{stem}.json"
    if tensors_path.is_file() and meta_path.is_file():
        meta = read_json(meta_path)
        if meta.get("image_ids") == list(data.image_ids) and meta.get("encoder") == encoder_name:
            return load_tensors(tensors_path)
    started = time.perf_counter()
    features = compute_features(encoder, data, batch_size, progress, device, mirror)
    seconds = time.perf_counter() - started
    atomic_save_tensors(tensors_path, features)
    atomic_write_json(meta_path, {"encoder": encoder_name, "data": data.name, "split": data.split,
                                  "n_images": len(data), "seconds": round(seconds, 1),
                                  "threads": torch.get_num_threads(), "mirrored": mirror,
                                  "image_ids": list(data.image_ids)})
    return features
