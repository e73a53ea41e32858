"""Metrics and evaluation runs: zero-shot classification, retrieval, sample grids."""
