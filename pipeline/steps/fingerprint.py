"""Fingerprints of a step's inputs, stored with resumption checkpoints, so a stage rerun on
changed inputs starts over instead of resuming a run that no longer applies."""

import hashlib
from pathlib import Path


def fingerprint(*paths: str | Path) -> str:
    """sha256 over the bytes of the given files, in order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
