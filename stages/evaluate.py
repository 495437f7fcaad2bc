"""Stage evaluate: the final action encoder on the test clips (10 windows x 3 crops), its
metrics on the pipeline's parent run, and the model registered in the MLflow registry."""

import argparse
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from pipeline.config import load_stage_params
from pipeline.steps.evaluate import evaluate
from pipeline.subsets import tag_metric_subsets
from pipeline.tracking import (
    log_parent_metrics,
    parent_run_id,
    register_action_encoder,
    stage_run,
)
from stages import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=Path, required=True, help="extract_frames output folder")
    parser.add_argument("--split", type=Path, required=True, help="label split (.parquet)")
    parser.add_argument("--models", type=Path, required=True, help="folder of every round's models")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics (.json)")
    parser.add_argument(
        "--predictions", type=Path, required=True, help="per-video predictions (.csv)"
    )
    parser.add_argument("--per-class", type=Path, required=True, help="per-class accuracy (.csv)")
    parser.add_argument("--confusion", type=Path, required=True, help="confusion matrix (.png)")
    args = parser.parse_args()
    params = load_stage_params()

    final_round = params.self_training.final_round
    with stage_run(
        "evaluate", params, {"evaluate": params.evaluate.model_dump(), "final_round": final_round}
    ) as child:
        result = evaluate(
            frames=args.frames,
            split=args.split,
            model=args.models / final_round / "action.pt",
            metrics_out=args.metrics,
            predictions_out=args.predictions,
            per_class_out=args.per_class,
            confusion_out=args.confusion,
            settings=params.evaluate,
            run=params.run,
        )
        mlflow.log_metrics(result.metrics)
        log_parent_metrics(params, result.metrics)
        subset = params.evaluate.subset  # test, or validation while choosing settings
        tag_metric_subsets(child.info.run_id, default=subset)
        parent = parent_run_id(MlflowClient(), params)
        tag_metric_subsets(parent, dict.fromkeys(result.metrics, subset))
        for artifact in (args.metrics, args.predictions, args.per_class, args.confusion):
            mlflow.log_artifact(str(artifact), "evaluation")
        saved = result.model
        version = register_action_encoder(
            saved.model,
            saved.clip.model_dump(),
            saved.classes,
            result.metrics,
            f"finepseudo-{params.dataset.name}",
        )
    print(f"{args.metrics}: {result.metrics} (registered as version {version})")


if __name__ == "__main__":
    run_stage(main)
