"""The data root: where data files are looked up, downloaded and cached."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "PIXLOOM_DATA"
DEFAULT_DATA_DIR = "~/.cache/pixloom"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: ``data_dir`` if given, else ``$PIXLOOM_DATA``, else ``~/.cache/pixloom``."""
    chosen = data_dir if data_dir else os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser()
