"""Base class, config handling and the on-disk format shared by every pixloom model.

What a model can do is declared by the capability classes it inherits
(:mod:`pixloom.models.capabilities`); the registry of names is :mod:`pixloom.models.registry`.

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

from pixloom.errors import ArgumentError, CheckpointError, PixloomError, one_line
from pixloom.models.hub import resolve_model_dir
from pixloom.version import __version__
from pixloom.io import atomic_save_tensors, atomic_write_json, load_tensors, read_json

# Config fields that may be 0 although their default is positive (0 switches the feature off).
ZERO_ALLOWED = frozenset({"select_beam", "min_count", "kl_warmup_steps", "output_hidden", "feature_proj", "shift"})
# Float fields that are probabilities or shares.
PROBABILITIES = frozenset({"dropout", "scheduled_sampling", "label_smoothing", "mirror_augment"})


def _field_kind(field: dataclasses.Field):
    default = field.default
    if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    return (type(default) if default is not dataclasses.MISSING and default is not None else None), default


def check_config_values(config) -> None:
    """One-line errors for config values of the wrong type or out of range: every int is a
    non-negative integer (at least 1 where the default is, unless 0 means "off"), ``levels`` is at
    least 2, every float is finite and non-negative (probabilities at most 1), strings are strings."""
    name = type(config).__name__
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        kind, default = _field_kind(field)
        if kind is bool:
            if not isinstance(value, bool):
                raise PixloomError(f"{name}.{field.name} must be true or false, got {value!r}")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise PixloomError(f"{name}.{field.name} must be an integer, got {value!r}")
            least = 2 if field.name == "levels" else 1 if default >= 1 and field.name not in ZERO_ALLOWED else 0
            if value < least:
                raise PixloomError(f"{name}.{field.name} must be at least {least}, got {value}")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise PixloomError(f"{name}.{field.name} must be a finite number, got {value!r}")
            if value < 0 or (field.name in PROBABILITIES and value > 1):
                bounds = "in [0, 1]" if field.name in PROBABILITIES else "at least 0"
                raise PixloomError(f"{name}.{field.name} must be {bounds}, got {value}")
        elif kind is str and not isinstance(value, str):
            raise PixloomError(f"{name}.{field.name} must be a string, got {value!r}")
        elif kind in (list, tuple) and not isinstance(value, (list, tuple)):
            raise PixloomError(f"{name}.{field.name} must be a list, got {value!r}")


def config_from_dict(config_class, values: dict[str, Any]):
    """Build a config dataclass from a dict (a config.json or keyword options), rejecting unknown
    keys and bad values with a one-line error. Whole floats given for int fields are accepted."""
    if not isinstance(values, dict):
        raise PixloomError(f"a {config_class.__name__} must be a JSON object, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise PixloomError(
            f"unknown option(s) for {config_class.__name__}: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(fields))}"
        )
    values = dict(values)
    for key, value in values.items():
        kind, _ = _field_kind(fields[key])
        if kind is int and isinstance(value, float) and value.is_integer():
            values[key] = int(value)
        elif kind is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
    config = config_class(**values)
    check_config_values(config)
    return config


def coerce_option(config_class, key: str, text: str):
    """Turn a ``--set key=value`` string into the type of the config field ``key``."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    if key not in fields:
        raise PixloomError(f"unknown option '{key}' for {config_class.__name__}; known: {', '.join(sorted(fields))}")
    kind = _field_kind(fields[key])[0] or str
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
    """``key=value`` strings (the command line's ``--set``) -> typed config overrides (one-line
    errors for bad ones)."""
    values = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ArgumentError("options", f"expect key=value, got '{pair}'")
        key, text = pair.split("=", 1)
        values[key.strip()] = coerce_option(config_class, key.strip(), text.strip())
    return values


class PixloomModel(nn.Module):
    """Base of every model: a config dataclass and the directory format. What a model does is
    declared by the capability classes of :mod:`pixloom.models.capabilities` it also inherits
    (``Trainable`` for a ``loss(batch)``, ``Sampler``, ``Captioning``, ...)."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    summary: ClassVar[str] = ""

    def __init__(self, config):
        super().__init__()
        if dataclasses.is_dataclass(config):
            check_config_values(config)
        self.config = config
        # How the weights were made, saved in config.json beside the config (e.g. "privacy": the budget
        # of a differentially private run); read back by from_pretrained.
        self.provenance: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- saving and loading -----------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "pixloom_version": __version__,
            "config": dataclasses.asdict(self.config),
            **self.provenance,
        }

    def extra_files(self) -> dict[str, Any]:
        """JSON files saved beside the weights (name -> JSON-able object). Override if needed."""
        return {}

    def load_extra_files(self, directory: Path) -> None:
        """Read what ``extra_files`` wrote. Override together with ``extra_files``."""

    def take_extras_from(self, other: "PixloomModel") -> None:
        """Copy what ``extra_files`` saves (e.g. a vocabulary) from a model of the same kind."""

    def canonical_state(self) -> dict[str, torch.Tensor]:
        """The state dict without aliases: a key that is not a parameter's or buffer's own name and
        shares its tensor with one that is (Opacus' DP layers add such aliases under training) is left out."""
        state = self.state_dict()
        own = {name for name, _ in self.named_parameters()} | {name for name, _ in self.named_buffers()}
        pointers = {state[k].data_ptr() for k in state if k in own}
        return {k: v for k, v in state.items() if k in own or v.data_ptr() not in pointers}

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = self.canonical_state()
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
            model = cls(config)
        except (PixloomError, TypeError, ValueError) as exc:
            raise CheckpointError(f"config in {directory} does not fit {cls.name}: {one_line(exc)}") from None
        model.load_extra_files(directory)
        model.provenance = {k: v for k, v in meta.items() if k not in ("model", "config", "pixloom_version")}
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
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"weights in {directory} hold NaN or infinite values ({key}); "
                                      "the file is damaged or comes from a diverged run")
            if value.shape != own[key].shape:
                raise CheckpointError(f"weights in {directory} do not match {cls.name}: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}")
            if value.is_floating_point():
                state[key] = value.to(own[key].dtype)
        model.load_state_dict(state)
        return model.to(map_location).eval()


INT8_SCALE = ":int8_row_scale"  # key suffix of the per-row scales of an int8-stored matrix


def with_weights_of(start: PixloomModel, overrides: dict, source: str) -> PixloomModel:
    """A new model of ``start``'s kind, its config changed by ``overrides``, holding ``start``'s
    weights (training with ``init=SOURCE``); a one-line error when the weights no longer fit."""
    try:
        model = type(start)(dataclasses.replace(start.config, **overrides))
        model.load_state_dict(start.state_dict())
    except (RuntimeError, TypeError, ValueError, PixloomError) as exc:
        raise ArgumentError("init", f"{source}: its weights do not fit the model options ({one_line(exc)})") from None
    model.take_extras_from(start)
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


def bits_per_dim(nll_nats: float | torch.Tensor, num_dims: int):
    """Convert a negative log-likelihood in nats per image to bits per dimension."""
    return nll_nats / (num_dims * math.log(2.0))
