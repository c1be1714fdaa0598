"""What the web app (:mod:`pixloom.serve`) asks of pixloom, as plain functions that take the models of a
:class:`ModelStore` and bytes or small JSON values, check them, and return PNG bytes and JSON-able
dicts. The HTTP layer only parses, queues and answers; every check of what a request may ask for is here.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixloom.data.images import picture_to_rgb
from pixloom.errors import ArgumentError, PixloomError
from pixloom.models.capabilities import (CanvasSampler, Captioning, Completer, Sampler, Upscaler,
                                         capabilities_of)
from pixloom.models.image import ImageModel, check_temperature, known_rows_mask
from pixloom.tasks.common import check_positive_int, check_seed, load_model, make_generator
from pixloom.viz import completion_picture, to_pil_grid

LIMITS = {"samples": 64, "completions": 16, "canvas": 16, "beam": 5, "upscale_pixels": 1024 * 1024,
          "upload_pixels": 16 * 1024 * 1024}


def png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


class ModelStore:
    """The served models, loaded once. Requests name a model by its key here; nothing a request
    sends ever reaches the file system."""

    def __init__(self, names, device: str = "cpu"):
        if not names:
            raise ArgumentError("models", "is empty: serve at least one model")
        self.models = {}
        for name in names:
            key = Path(str(name)).name if Path(str(name)).is_dir() else str(name)
            if key in self.models:
                raise ArgumentError("models", f"names two models '{key}'")
            self.models[key] = load_model(name, device)

    def info(self) -> list[dict]:
        out = []
        for key, model in self.models.items():
            entry = {"name": key, "model": model.name, "capabilities": capabilities_of(model),
                     "parameters": model.num_parameters()}
            if isinstance(model, ImageModel):
                entry.update({"image_shape": list(model.image_shape), "levels": model.config.levels,
                              "num_classes": model.config.num_classes})
            if isinstance(model, Captioning):
                entry["has_attention"] = bool(model.has_attention)
            if isinstance(model, Upscaler):
                entry["scale"] = model.scale
            out.append(entry)
        return out

    def get(self, key, capability: type):
        if not isinstance(key, str) or key not in self.models:
            raise ArgumentError("model", f"must be one of the served models ({', '.join(self.models)}), got {key!r}")
        model = self.models[key]
        if not isinstance(model, capability):
            raise ArgumentError("model", f"'{key}' is a {model.name} model; it cannot do this")
        return model


def decode_picture(data: bytes, max_pixels: int = LIMITS["upload_pixels"]) -> np.ndarray:
    """Uploaded bytes -> uint8 RGB (H, W, 3); a one-line error for anything that is not a picture."""
    from PIL import UnidentifiedImageError

    if not data:
        raise ArgumentError("file", "is empty")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
            if width * height > max_pixels:
                raise ArgumentError("file", f"has {width}x{height} pixels, more than the {max_pixels:,} allowed")
            picture.load()
            return picture_to_rgb(picture, where="the uploaded picture")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ArgumentError("file", "is not a picture pixloom can read (PNG, JPEG, GIF, BMP, WEBP, TIFF)") from None


def _count(value, name: str, most: int) -> int:
    return check_positive_int(value, name, most=most)


def sample(store: ModelStore, model: str, n: int = 16, temperature: float = 1.0, seed=None, label=None) -> dict:
    generator_model = store.get(model, Sampler)
    n = _count(n, "n", LIMITS["samples"])
    temperature = check_temperature(temperature)
    seed = check_seed(seed) if seed is not None else int(time.time() * 1000) % 2 ** 31
    labels = None
    if label is not None:
        labels = generator_model.check_label(torch.as_tensor(label), n)
    images = generator_model.sample(n, temperature=temperature, label=labels,
                                    generator=make_generator(seed, generator_model.device)).cpu()
    grid = to_pil_grid(images, generator_model.config.levels, nrow=min(8, n), scale=3)
    return {"png": png_bytes(grid), "seed": seed, "n": n}


def complete(store: ModelStore, model: str, pixels=None, picture: bytes | None = None, keep_rows=None, mask=None,
             n: int = 6, temperature: float = 1.0, seed=None) -> dict:
    """Completions of one image: ``pixels`` (a flat list or (H, W) nested list of intensities in
    [0, 1], as the page's canvas sends) or an uploaded ``picture``; keep the top ``keep_rows`` rows or
    the pixels where ``mask`` (same shape) is 1."""
    completer = store.get(model, Completer)
    n = _count(n, "n", LIMITS["completions"])
    c, h, w = completer.image_shape
    if (pixels is None) == (picture is None):
        raise ArgumentError("pixels", "or picture: send exactly one of the two")
    if pixels is not None:
        array = np.asarray(pixels, dtype=np.float64)
        if array.size != h * w or not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ArgumentError("pixels", f"must be {h * w} intensities in [0, 1] ({w}x{h})")
        rgb = np.repeat((array.reshape(h, w, 1) * 255).round().astype(np.uint8), 3, axis=2)
    else:
        rgb = decode_picture(picture)
    image = completer.prepare_images(Image.fromarray(rgb))
    if (keep_rows is None) == (mask is None):
        raise ArgumentError("keep_rows", "or mask: send exactly one of the two")
    if keep_rows is not None:
        if isinstance(keep_rows, bool) or not isinstance(keep_rows, int) or not 0 <= keep_rows <= h:
            raise ArgumentError("keep_rows", f"must lie in [0, {h}], got {keep_rows!r}")
        known = known_rows_mask(completer.image_shape, keep_rows)
        options = {"known_rows": keep_rows}
    else:
        array = np.asarray(mask)
        if array.size != h * w or not np.isin(array, (0, 1)).all():
            raise ArgumentError("mask", f"must be {h * w} values of 0 or 1 ({w}x{h})")
        known = torch.as_tensor(array.reshape(1, h, w).astype(bool)).expand(c, h, w)
        options = {"mask": known}
    seed = check_seed(seed) if seed is not None else int(time.time() * 1000) % 2 ** 31
    batch = image.expand(n, c, h, w)
    completions = completer.complete(batch, temperature=check_temperature(temperature),
                                     generator=make_generator(seed, completer.device), **options).cpu()
    picture = completion_picture(image.cpu(), known, completions[None], completer.config.levels)
    return {"png": png_bytes(picture), "seed": seed, "n": n}


def canvas(store: ModelStore, model: str, n: int = 4, seed=None) -> dict:
    drawer = store.get(model, CanvasSampler)
    n = _count(n, "n", LIMITS["canvas"])
    seed = check_seed(seed) if seed is not None else int(time.time() * 1000) % 2 ** 31
    canvases = drawer.canvas_steps(n, generator=make_generator(seed, drawer.device)).cpu()  # (n, T, C, H, W)
    frames = [png_bytes(to_pil_grid(canvases[:, t], 2, nrow=min(4, n), scale=3)) for t in range(canvases.shape[1])]
    return {"frames": frames, "steps": canvases.shape[1], "seed": seed}


def caption(store: ModelStore, model: str, picture: bytes | np.ndarray, beam: int = 3) -> dict:
    captioner = store.get(model, Captioning)
    beam = _count(beam, "beam", LIMITS["beam"])
    rgb = picture if isinstance(picture, np.ndarray) else decode_picture(picture)
    images = captioner.prepare_images([Image.fromarray(rgb)])
    decoded = captioner.decode(images, beam=beam)
    words = captioner.vocab.decode_ids(decoded.tokens[0])
    result = {"caption": captioner.vocab.decode(decoded.tokens[0]), "words": words, "attention": []}
    if captioner.has_attention and decoded.attention is not None:
        base = Image.fromarray(images[0].permute(1, 2, 0).numpy())
        attention = decoded.attention[0]
        side = int(round(attention.shape[-1] ** 0.5))
        for k in range(len(words)):
            heat = attention[k].float().view(side, side)
            heat = (heat / heat.max().clamp(min=1e-12) * 255).byte().numpy()
            mask = Image.fromarray(heat).resize(base.size, Image.BILINEAR)
            shown = Image.composite(base, Image.new("RGB", base.size, (0, 0, 0)), mask)
            result["attention"].append(png_bytes(shown.resize((160, 160))))
    return result


def upscale(store: ModelStore, model: str, picture: bytes | np.ndarray) -> dict:
    upscaler = store.get(model, Upscaler)
    rgb = picture if isinstance(picture, np.ndarray) else decode_picture(picture)
    if rgb.shape[0] * rgb.shape[1] > LIMITS["upscale_pixels"]:
        raise ArgumentError("file", f"has {rgb.shape[1]}x{rgb.shape[0]} pixels; the app upscales at most "
                            f"{LIMITS['upscale_pixels']:,} (use pixloom upscale for larger pictures)")
    if isinstance(upscaler, ImageModel):
        raise PixloomError(f"'{model}' upscales digits; use the command line (pixloom upscale)")
    out = upscaler.upscale(torch.from_numpy(rgb).permute(2, 0, 1).contiguous())[0]
    array = out.permute(1, 2, 0).numpy()
    upscaled = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    h, w = rgb.shape[:2]
    bicubic = Image.fromarray(rgb).resize((w * upscaler.scale, h * upscaler.scale), Image.BICUBIC)
    return {"upscaled": png_bytes(upscaled.convert("RGB")), "bicubic": png_bytes(bicubic),
            "size": [w * upscaler.scale, h * upscaler.scale], "scale": upscaler.scale}
