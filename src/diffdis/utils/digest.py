"""A file's hash, read in 1 MiB blocks: what pinned weights and packages are checked against."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: str | Path, algorithm: str) -> hashlib._Hash:
    """The `algorithm` ("sha256", "sha512", ...) hash object of the file at `path` (hashlib.file_digest is 3.11+)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest
