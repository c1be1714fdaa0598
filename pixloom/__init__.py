"""pixloom: recurrent networks (RNN, LSTM, GRU) that generate and describe images.

>>> import pixloom
>>> model = pixloom.from_pretrained("mnist-pixelrnn")          # a shipped model, or a run directory
>>> images = pixloom.sample(model, n=16, seed=0, out="grid.png")

The API: :func:`from_pretrained`, :func:`train`, :func:`evaluate`, :func:`load_dataset`,
:func:`sample`, :func:`complete`, :func:`reconstruct`, :func:`interpolate`, :func:`canvas`,
:func:`caption`, :func:`upscale`, :func:`list_models`, :func:`list_datasets`, :func:`list_shipped`; models also have
methods for what they do (``model.sample(n)``, ``model.complete(images, known_rows=14)``,
``model.caption(["photo.jpg"])``, ...). Errors a user can cause are :class:`PixloomError`.
"""

from pixloom.errors import ArgumentError, PixloomError
from pixloom.version import __version__

_API = {
    "train": "pixloom.tasks.training", "parse_options": "pixloom.tasks.training",
    "evaluate": "pixloom.tasks.evaluation",
    "sample": "pixloom.tasks.generation", "complete": "pixloom.tasks.generation",
    "reconstruct": "pixloom.tasks.generation", "interpolate": "pixloom.tasks.generation",
    "canvas": "pixloom.tasks.generation", "upscale": "pixloom.tasks.superres",
    "caption": "pixloom.tasks.captioning", "build_ensemble": "pixloom.tasks.captioning",
    "list_models": "pixloom.tasks.catalog", "list_datasets": "pixloom.tasks.catalog",
    "list_shipped": "pixloom.tasks.catalog", "run_demo": "pixloom.tasks.demo",
    "compare": "pixloom.tasks.comparison", "sample_metrics": "pixloom.tasks.sample_quality",
    "load_dataset": "pixloom.data.registry",
}

__all__ = ["ArgumentError", "PixloomError", "__version__", "from_pretrained", *_API]


def from_pretrained(dir_or_name, map_location="cpu"):
    """Load any saved pixloom model from a run directory or a shipped model name."""
    from pixloom.models.registry import load_pretrained

    return load_pretrained(dir_or_name, map_location=map_location)


def __getattr__(name):  # the API functions, imported on first use (``import pixloom`` stays light)
    if name in _API:
        import importlib

        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pixloom' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
