"""The models: one file per model (one paper), its config dataclass beside it.

``MODELS`` maps the names ``pixloom train`` takes to classes; ``load_pretrained`` loads any saved
model (a run directory or a shipped name). What each model can do is declared by the capability
classes of :mod:`pixloom.models.capabilities`.
"""

from pixloom.models.hub import shipped_models
from pixloom.models.registry import MODELS, get_model_class, load_pretrained

__all__ = ["MODELS", "get_model_class", "load_pretrained", "shipped_models"]
