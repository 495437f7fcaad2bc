"""Initialise a torchvision network from a local weights file; nothing is ever downloaded.
Paper-scale networks refuse to start from random weights unless the params allow it."""

from pathlib import Path

import torch
from torch import nn

from pipeline.config import ActionEncoderParams, AlignabilityEncoderParams, ParamsError

# Architectures the paper starts from pretrained weights: g from self-supervised TCLR weights,
# f's per-frame ResNet from ImageNet. The CPU presets' small networks have no such weights and
# start from GITDL on the dataset instead.
PRETRAINED_ACTION_ARCHS = {"r2plus1d_18"}
PRETRAINED_BACKBONES = {"resnet18", "resnet50"}


def check_pretrained_weights(
    action: ActionEncoderParams, alignability: AlignabilityEncoderParams
) -> None:
    """ParamsError when a paper-scale encoder would train from random weights and its
    allow_random_init is false; the message names the weights keys to set."""
    random = []
    if (
        action.arch in PRETRAINED_ACTION_ARCHS
        and not action.weights
        and not action.allow_random_init
    ):
        random.append(
            f"action_encoder.arch {action.arch} with action_encoder.weights empty (the paper "
            "starts g from self-supervised TCLR weights)"
        )
    if (
        alignability.backbone in PRETRAINED_BACKBONES
        and not alignability.backbone_weights
        and not alignability.allow_random_init
    ):
        random.append(
            f"alignability_encoder.backbone {alignability.backbone} with "
            "alignability_encoder.backbone_weights empty (the paper's ResNet starts from "
            "ImageNet weights)"
        )
    if random:
        raise ParamsError(
            "refusing to train from random weights: "
            + "; ".join(random)
            + ". Set action_encoder.weights and alignability_encoder.backbone_weights to local "
            "state-dict files, or allow random weights explicitly with "
            "action_encoder.allow_random_init: true / alignability_encoder.allow_random_init: "
            "true"
        )


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
