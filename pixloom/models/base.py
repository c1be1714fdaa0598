"""Base class, config handling and the on-disk format shared by every pixloom model.

A saved model is a directory::

    config.json          {"model": "<registry name>", "config": {...}, "pixloom_version": "..."}
    model.safetensors    the weights (no pickled code)
    ...                  extra files a model needs (e.g. vocab.json)

``from_pretrained`` accepts such a directory (a run directory from ``pixloom train`` is one) or
the name of a model shipped inside the package (``pixloom/pretrained/<name>/``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

import pixloom
from pixloom.errors import CheckpointError, PixloomError
from pixloom.io import atomic_save_tensors, atomic_write_json, load_tensors, read_json

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"


def config_from_dict(config_class, values: dict[str, Any]):
    """Build a config dataclass from a dict, rejecting unknown keys with a one-line error."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise PixloomError(
            f"unknown option(s) for {config_class.__name__}: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(fields))}"
        )
    return config_class(**values)


def coerce_option(config_class, key: str, text: str):
    """Turn a ``--set key=value`` string into the type of the config field ``key``."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    if key not in fields:
        raise PixloomError(f"unknown option '{key}' for {config_class.__name__}; known: {', '.join(sorted(fields))}")
    default = fields[key].default
    kind = type(default) if default is not dataclasses.MISSING and default is not None else str
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind in (tuple, list):
            return kind(int(v) for v in text.split(","))
        return kind(text)
    except ValueError:
        raise PixloomError(f"option '{key}' expects {kind.__name__}, got '{text}'") from None


def parse_set_options(config_class, pairs: list[str] | None) -> dict[str, Any]:
    """``--set key=value`` strings -> typed config overrides (one-line errors for bad ones)."""
    values = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise PixloomError(f"--set expects key=value, got '{pair}'")
        key, text = pair.split("=", 1)
        values[key.strip()] = coerce_option(config_class, key.strip(), text.strip())
    return values


class PixloomModel(nn.Module):
    """Base of every model: a config dataclass, ``loss(batch) -> dict`` and the directory format."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    summary: ClassVar[str] = ""

    def __init__(self, config):
        super().__init__()
        self.config = config

    # -- training ---------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Return a dict with a scalar ``"loss"`` to minimise, plus any figures worth logging."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- saving and loading -----------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "pixloom_version": pixloom.__version__,
            "config": dataclasses.asdict(self.config),
        }

    def extra_files(self) -> dict[str, Any]:
        """JSON files saved beside the weights (name -> JSON-able object). Override if needed."""
        return {}

    def load_extra_files(self, directory: Path) -> None:
        """Read what ``extra_files`` wrote. Override together with ``extra_files``."""

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        if dtype == torch.int8:
            state = quantize_int8(state)
        elif dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        atomic_save_tensors(directory / "model.safetensors", state)
        for filename, obj in self.extra_files().items():
            atomic_write_json(directory / filename, obj)
        atomic_write_json(directory / "config.json", self.config_dict())
        return directory

    @classmethod
    def from_pretrained(cls, dir_or_name: str | Path, map_location: str | torch.device = "cpu"):
        directory = resolve_model_dir(dir_or_name)
        meta = read_json(directory / "config.json")
        if not isinstance(meta, dict) or "model" not in meta or "config" not in meta:
            raise CheckpointError(f"{directory / 'config.json'} is not a pixloom model config")
        if cls.name and meta["model"] != cls.name:
            raise CheckpointError(
                f"{directory} holds a '{meta['model']}' model, not a '{cls.name}' model"
            )
        try:
            config = config_from_dict(cls.config_class, meta["config"])
        except (PixloomError, TypeError) as exc:
            raise CheckpointError(f"config in {directory} does not fit {cls.name}: {exc}") from None
        model = cls(config)
        model.load_extra_files(directory)
        state = dequantize_int8(load_tensors(directory / "model.safetensors"))
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise CheckpointError(
                f"weights in {directory} do not match {cls.name} "
                f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)"
            )
        for key, value in state.items():
            if value.shape != own[key].shape:
                raise CheckpointError(f"weights in {directory} do not match {cls.name}: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}")
            if value.is_floating_point():
                state[key] = value.to(own[key].dtype)
        model.load_state_dict(state)
        return model.to(map_location).eval()


INT8_SCALE = ":int8_row_scale"  # key suffix of the per-row scales of an int8-stored matrix


def with_weights_of(start: PixloomModel, overrides: dict, source: str) -> PixloomModel:
    """A new model of ``start``'s kind, its config changed by ``overrides``, holding ``start``'s
    weights (``train --init SOURCE``); a one-line error when the weights no longer fit."""
    try:
        model = type(start)(dataclasses.replace(start.config, **overrides))
        model.load_state_dict(start.state_dict())
    except (RuntimeError, TypeError, PixloomError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PixloomError(f"--init {source}: its weights do not fit the --set options ({first})") from None
    return model


def quantize_int8(state: dict[str, torch.Tensor], min_size: int = 4096) -> dict[str, torch.Tensor]:
    """Storage format for shipping: each float matrix with at least ``min_size`` values becomes int8
    with one float32 scale per row (symmetric, w ~ q * scale, |error| <= scale / 2); every other
    float tensor becomes float16. A quarter of float32's size for the big matrices."""
    out = {}
    for key, value in state.items():
        if value.is_floating_point() and value.dim() == 2 and value.numel() >= min_size:
            scale = value.abs().amax(1, keepdim=True).clamp(min=1e-12) / 127.0
            out[key] = (value / scale).round().clamp(-127, 127).to(torch.int8)
            out[key + INT8_SCALE] = scale.float()
        elif value.is_floating_point():
            out[key] = value.half()
        else:
            out[key] = value
    return out


def dequantize_int8(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Undo :func:`quantize_int8` (a state without int8 matrices is returned unchanged)."""
    scales = [k for k in state if k.endswith(INT8_SCALE)]
    if not scales:
        return state
    state = dict(state)
    for scale_key in scales:
        key = scale_key[: -len(INT8_SCALE)]
        scale = state.pop(scale_key)
        if key not in state or state[key].dtype != torch.int8 or scale.shape != (state[key].shape[0], 1):
            raise CheckpointError(f"int8 weights of '{key}' do not match their scales")
        state[key] = state[key].float() * scale
    return state


def resolve_model_dir(dir_or_name: str | Path) -> Path:
    """A run/model directory, or the directory of a model shipped inside the package."""
    path = Path(dir_or_name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{path} is not a saved model (no config.json)")
        return path
    shipped = PRETRAINED_DIR / str(dir_or_name)
    if "/" not in str(dir_or_name) and (shipped / "config.json").is_file():
        return shipped
    names = ", ".join(shipped_models()) or "none"
    raise CheckpointError(f"no run directory or shipped model named '{dir_or_name}' (shipped models: {names})")


def shipped_models() -> list[str]:
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "config.json").is_file())


def load_pretrained(dir_or_name: str | Path, map_location="cpu") -> PixloomModel:
    """Load a model of any registered kind, reading its kind from ``config.json``."""
    from pixloom.models import get_model_class

    directory = resolve_model_dir(dir_or_name)
    meta = read_json(directory / "config.json")
    if not isinstance(meta, dict) or "model" not in meta:
        raise CheckpointError(f"{directory / 'config.json'} is not a pixloom model config")
    return get_model_class(meta["model"]).from_pretrained(directory, map_location=map_location)


def bits_per_dim(nll_nats: float | torch.Tensor, num_dims: int):
    """Convert a negative log-likelihood in nats per image to bits per dimension."""
    return nll_nats / (num_dims * math.log(2.0))
