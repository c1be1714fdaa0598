"""pixloom: recurrent networks (RNN, LSTM, GRU) that generate and describe images."""

__version__ = "0.1.0"


def from_pretrained(dir_or_name, map_location="cpu"):
    """Load any saved pixloom model from a run directory or a shipped model name."""
    from pixloom.models.base import load_pretrained

    return load_pretrained(dir_or_name, map_location=map_location)
