"""captioning models."""
