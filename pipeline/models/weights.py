"""Initialise a torchvision network from a local weights file; nothing is ever downloaded."""

from pathlib import Path

import torch
from torch import nn


def load_backbone_weights(model: nn.Module, path: str | Path, head_prefix: str = "fc.") -> None:
    """Load a state dict saved from the same architecture, all but its classifier head.

    Raises ValueError naming the file when it is missing or does not fit the architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: weights file not found")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith(head_prefix)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # tensors of the right name but the wrong shape
        raise ValueError(f"{path}: does not fit {type(model).__name__}: {error}") from None
    missing = [k for k in missing if not k.startswith(head_prefix)]
    if missing or unexpected:
        raise ValueError(
            f"{path}: does not fit {type(model).__name__}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
