"""Datasets, captions and image transforms."""
