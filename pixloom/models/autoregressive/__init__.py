"""Autoregressive image models: exact likelihoods, sampling and completion."""
