"""What pixloom has: the models, the shipped (pretrained) models and the data sets."""

from __future__ import annotations

from pixloom.data.registry import DATASETS
from pixloom.io import read_json
from pixloom.models.capabilities import capabilities_of
from pixloom.models.hub import PRETRAINED_DIR, shipped_models
from pixloom.models.registry import MODELS


def list_models() -> list[dict]:
    """Every model: ``name``, ``summary``, ``capabilities`` (what it can do)."""
    return [{"name": name, "summary": cls.summary, "capabilities": capabilities_of(cls)}
            for name, cls in sorted(MODELS.items())]


def list_shipped() -> list[dict]:
    """The models shipped inside the package: ``name``, ``model`` (its kind) and the config fields
    that tell models of one kind apart (e.g. a PixelRNN's ``variant``)."""
    out = []
    for name in shipped_models():
        meta = read_json(PRETRAINED_DIR / name / "config.json")
        config = meta.get("config", {})
        detail = {k: config[k] for k in ("variant", "encoder") if k in config}
        out.append({"name": name, "model": meta.get("model"), **detail})
    return out


def list_datasets() -> list[dict]:
    """Every data set: ``name``, ``kind`` (images | captions), ``summary``."""
    return [{"name": info.name, "kind": info.kind, "summary": info.summary} for info in DATASETS.values()]
