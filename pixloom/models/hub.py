"""Where saved models are: run directories, and the models shipped inside the package
(``pixloom/pretrained/<name>/``)."""

from __future__ import annotations

from pathlib import Path

from pixloom.errors import CheckpointError

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"


def shipped_models() -> list[str]:
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "config.json").is_file())


def resolve_model_dir(dir_or_name: str | Path) -> Path:
    """A run/model directory, or the directory of a model shipped inside the package."""
    path = Path(dir_or_name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{path} is not a saved model (no config.json)")
        return path
    name = str(dir_or_name)
    shipped = PRETRAINED_DIR / name
    if name and "/" not in name and "\\" not in name and name not in (".", "..") and (shipped / "config.json").is_file():
        return shipped
    names = ", ".join(shipped_models()) or "none"
    raise CheckpointError(f"no run directory or shipped model named '{dir_or_name}' (shipped models: {names})")
