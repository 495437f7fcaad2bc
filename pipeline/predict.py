"""Classify new video files with a trained action encoder: top-k classes with probabilities.

The files go through the same decoding as the training data (decord, short side resized,
frames resampled) and the same 10-window x 3-crop views as the test protocol. A file that
cannot be read gets an error of its own; the others are still classified.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.config import ClipParams, EvaluateParams, ExtractParams
from pipeline.data.augment import eval_views
from pipeline.data.clips import evenly_spaced_windows
from pipeline.data.decoder import DecodeSettings, VideoFailure, decode_video
from pipeline.inference.multiview import view_probabilities
from pipeline.models.saved import load_action_encoder


@dataclass(frozen=True)
class Classifier:
    """A network that maps clips (B, 3, T, crop, crop) to logits over `classes`."""

    model: nn.Module
    classes: list[str]
    clip: ClipParams


@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (class, probability), most probable first; empty on error
    error: str = ""


def classifier_from_file(path: str | Path) -> Classifier:
    saved = load_action_encoder(path)
    return Classifier(saved.model.eval(), saved.classes, saved.clip)


def classifier_from_registry(uri: str) -> Classifier:
    """A registered model, e.g. `models:/finepseudo-synthetic/3`."""
    import mlflow.pytorch  # only this path needs MLflow's model flavour

    metadata = mlflow.models.get_model_info(uri).metadata or {}
    if "classes" not in metadata or "clip" not in metadata:
        raise ValueError(
            f"{uri}: registered model lacks the classes/clip metadata FinePseudo writes"
        )
    return Classifier(
        mlflow.pytorch.load_model(uri),
        metadata["classes"],
        ClipParams.model_validate(metadata["clip"]),
    )


@torch.no_grad()
def predict_files(
    classifier: Classifier,
    paths: list[str | Path],
    extract: ExtractParams,
    evaluate: EvaluateParams,
    precision: str,
    top_k: int = 5,
) -> list[Prediction]:
    """Top-k classes of each file, averaged over evaluate.clips x evaluate.crops views, the
    model at `precision` (run.precision, as in evaluate)."""
    settings = DecodeSettings(
        short_side=extract.short_side, max_frames=extract.max_frames, min_frames=1
    )
    clip, results = classifier.clip, []
    for path in paths:
        try:
            frames = decode_video(Path(path), None, None, settings).frames
        except VideoFailure as failure:
            results.append(Prediction(str(path), [], f"{failure.status}: {failure}"))
            continue
        windows = evenly_spaced_windows(len(frames), clip.frames, clip.stride, evaluate.clips)
        views = torch.cat([eval_views(frames[ids], clip.crop, evaluate.crops) for ids in windows])
        probabilities = view_probabilities(
            classifier.model, views[None], torch.device("cpu"), precision
        )[0].numpy()
        order = np.argsort(-probabilities)[:top_k]
        results.append(
            Prediction(str(path), [(classifier.classes[i], float(probabilities[i])) for i in order])
        )
    return results
