"""One checkpoint format for everything: resuming a stopped stage, the models that stages
hand to each other, evaluation and predict.

A checkpoint is a single dict of plain values and tensors (so it loads with
weights_only=True): model state, optimizer and scheduler states, the epoch, the best metric, the
precision it trained at, and the resolved config needed to rebuild the model without
params.yaml.
"""

from pathlib import Path
from typing import Any

import torch

from pipeline.atomic import atomic_output


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """Write `checkpoint` atomically: a stage killed mid-write leaves the previous one intact."""
    with atomic_output(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint on the CPU; raise ValueError naming the file when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which one
        raise ValueError(f"{path}: not a readable checkpoint ({error})") from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "config" not in checkpoint:
        raise ValueError(f"{path}: not a FinePseudo checkpoint (no model/config entries)")
    return checkpoint
