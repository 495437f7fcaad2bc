"""Step 6: evaluate the action encoder g alone on the test clips of the model's classes,
10 windows x 3 crops per video, softmax averaged over the 30 views."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.assessment.classification import (
    classification_metrics,
    confusion_matrix,
    per_class_table,
)
from pipeline.assessment.plots import plot_confusion
from pipeline.atomic import atomic_output
from pipeline.config import EvaluateParams, RunParams
from pipeline.data.frames import FrameStore
from pipeline.data.splits import evaluation_set
from pipeline.inference.multiview import predict_videos
from pipeline.models.saved import SavedActionEncoder, load_action_encoder
from pipeline.train.runtime import running


@dataclass
class Evaluation:
    metrics: dict[str, float]
    model: SavedActionEncoder
    confusion_png: Path


def evaluate(
    *,
    frames: Path,
    split: Path,
    model: Path,
    metrics_out: Path,
    predictions_out: Path,
    per_class_out: Path,
    confusion_out: Path,
    settings: EvaluateParams,
    run: RunParams,
) -> Evaluation:
    """Score the action encoder saved at `model` on the split's evaluation clips; write the
    metrics (JSON), per-video predictions and per-class table (CSV), confusion matrix (PNG)."""
    with running(run.device, run.threads, run.precision) as runtime:
        store = FrameStore(frames)
        saved = load_action_encoder(model)
        clips = evaluation_set(store, split, subset=settings.subset)
        if clips.empty:
            raise ValueError(
                f"{split}: no {settings.subset} clips of the model's classes to evaluate"
            )
        probabilities = predict_videos(
            saved.model,
            store=store,
            video_ids=clips.video_id.tolist(),
            clip=saved.clip,
            windows=settings.clips,
            crops=settings.crops,
            batch_size=settings.batch_size,
            device=runtime.device,
            precision=runtime.precision,
            workers=run.workers,
            description="evaluating",
        )
        labels = clips.label.to_numpy(dtype=np.int64)
        predicted = probabilities.argmax(axis=1)
        metrics = classification_metrics(probabilities, labels) | {"clips": float(len(labels))}
        confusion = confusion_matrix(predicted, labels, len(saved.classes))

        with atomic_output(metrics_out) as tmp:
            tmp.write_text(json.dumps(metrics, indent=2) + "\n")
        table = pd.DataFrame(
            {
                "video_id": clips.video_id,
                "actual": [saved.classes[i] for i in labels],
                "predicted": [saved.classes[i] for i in predicted],
                "confidence": probabilities.max(axis=1),
            }
        )
        with atomic_output(predictions_out) as tmp:
            table.to_csv(tmp, index=False)
        with atomic_output(per_class_out) as tmp:
            per_class_table(confusion, saved.classes).to_csv(tmp, index=False)
        plot_confusion(
            confusion,
            saved.classes,
            confusion_out,
            f"top-1 {metrics['top1']:.1%} ({len(labels)} clips)",
        )
        return Evaluation(metrics, saved, Path(confusion_out))
