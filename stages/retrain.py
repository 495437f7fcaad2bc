"""Stage retrain (one per self-training round): retrain both encoders on the labeled clips
plus the round's accepted pseudo-labels, continuing from the previous round's weights."""

import argparse
from pathlib import Path

import mlflow

from pipeline.config import load_stage_params
from pipeline.health.record import record_health
from pipeline.steps.retrain import retrain
from pipeline.subsets import tag_metric_subsets
from pipeline.tracking import stage_run
from stages import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--round", required=True, help="this round's name, round_<r>")
    parser.add_argument("--frames", type=Path, required=True, help="extract_frames output folder")
    parser.add_argument("--split", type=Path, required=True, help="label split (.parquet)")
    parser.add_argument(
        "--pseudo-labels", type=Path, required=True, help="this round's pseudo-labels (.parquet)"
    )
    parser.add_argument(
        "--previous", type=Path, required=True, help="previous round's model folder"
    )
    parser.add_argument("--out", type=Path, required=True, help="this round's model folder")
    parser.add_argument(
        "--checkpoints", type=Path, required=True, help="resumption checkpoint folder"
    )
    args = parser.parse_args()
    params = load_stage_params()

    logged = {
        "retrain": params.self_training.retrain.model_dump(),
        "retrain_alignability": params.self_training.retrain_alignability.model_dump(),
        "labeled_share": params.self_training.labeled_share,
    }
    with stage_run(f"retrain@{args.round}", params, logged) as child:
        result = retrain(
            frames=args.frames,
            split=args.split,
            pseudo_labels=args.pseudo_labels,
            previous=args.previous,
            out=args.out,
            checkpoints=args.checkpoints,
            method=params.run.method,
            labeled_share=params.self_training.labeled_share,
            action_train=params.self_training.retrain,
            alignability_train=params.self_training.retrain_alignability,
            metric=params.metric_learning,
            augment=params.augment,
            run=params.run,
            health=params.health,
        )
        if child is None:  # another torchrun rank: rank 0 records the stage
            return
        record_health(f"retrain@{args.round}", result.health)
        mlflow.log_metric("training_clips", result.training_clips)
        mlflow.log_metrics(result.budget)  # the equal budget, logged with every round
        mlflow.log_artifacts(str(args.out), "models")
        tag_metric_subsets(child.info.run_id)


if __name__ == "__main__":
    run_stage(main)
