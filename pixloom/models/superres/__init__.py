"""superres models."""
