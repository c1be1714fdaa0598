"""pixloom's version (read by saved models' config.json)."""

__version__ = "0.1.0"
