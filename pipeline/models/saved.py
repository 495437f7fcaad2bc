"""The model files stages hand to each other, and that evaluate and predict load.

A model file is a checkpoint (pipeline/checkpoint.py) whose config holds everything
needed to rebuild the network without params.yaml: the architecture section, the clip
geometry it was trained on, and the class names its outputs stand for.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from pipeline.config import ActionEncoderParams, AlignabilityEncoderParams, ClipParams
from pipeline.models.alignability import AlignabilityModel
from pipeline.models.registry import build_action_encoder, build_alignability_model
from pipeline.checkpoint import load_checkpoint, save_checkpoint


@dataclass
class SavedActionEncoder:
    model: nn.Module
    encoder: ActionEncoderParams
    clip: ClipParams
    classes: list[str]


@dataclass
class SavedAlignabilityModel:
    model: AlignabilityModel
    encoder: AlignabilityEncoderParams
    clip: ClipParams


def save_action_encoder(
    path: str | Path, saved: SavedActionEncoder, metrics: dict[str, float]
) -> None:
    config = {
        "kind": "action_encoder",
        "encoder": saved.encoder.model_dump(mode="json"),
        "clip": saved.clip.model_dump(mode="json"),
        "classes": list(saved.classes),
    }
    save_checkpoint(path, {"model": saved.model.state_dict(), "config": config, "metrics": metrics})


def save_alignability_model(
    path: str | Path, saved: SavedAlignabilityModel, metrics: dict[str, float]
) -> None:
    config = {
        "kind": "alignability_model",
        "encoder": saved.encoder.model_dump(mode="json"),
        "clip": saved.clip.model_dump(mode="json"),
    }
    save_checkpoint(path, {"model": saved.model.state_dict(), "config": config, "metrics": metrics})


def _expect(checkpoint: dict[str, Any], kind: str, path: str | Path) -> dict[str, Any]:
    config = checkpoint["config"]
    if config.get("kind") != kind:
        raise ValueError(f"{path}: holds a {config.get('kind')!r}, expected a {kind!r} model file")
    return config


def load_action_encoder(path: str | Path) -> SavedActionEncoder:
    """Rebuild the action encoder saved at `path` (weights_only loading), on the CPU."""
    checkpoint = load_checkpoint(path)
    config = _expect(checkpoint, "action_encoder", path)
    encoder = ActionEncoderParams.model_validate(config["encoder"] | {"weights": ""})
    model = build_action_encoder(encoder, len(config["classes"]))
    model.load_state_dict(checkpoint["model"])
    return SavedActionEncoder(
        model, encoder, ClipParams.model_validate(config["clip"]), config["classes"]
    )


def load_alignability_model(path: str | Path) -> SavedAlignabilityModel:
    """Rebuild the alignability encoder and its score head saved at `path`, on the CPU."""
    checkpoint = load_checkpoint(path)
    config = _expect(checkpoint, "alignability_model", path)
    # files saved before subtract_clip_mean existed hold encoders trained on whole frames
    before_clip_mean = {"subtract_clip_mean": False}
    encoder = AlignabilityEncoderParams.model_validate(
        before_clip_mean | config["encoder"] | {"backbone_weights": ""}
    )
    model = build_alignability_model(encoder)
    model.load_state_dict(checkpoint["model"])
    return SavedAlignabilityModel(model, encoder, ClipParams.model_validate(config["clip"]))
