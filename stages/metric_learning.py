"""Stage metric_learning: alignability-verification metric learning of the alignability
encoder on one label split's labeled clips (image backbone frozen)."""

import argparse
from pathlib import Path

import mlflow

from pipeline.assessment.plots import plot_score_histograms
from pipeline.config import load_stage_params
from pipeline.health.record import record_health
from pipeline.steps.metric_learning import learn_alignability
from pipeline.subsets import tag_metric_subsets
from pipeline.tracking import stage_run
from stages import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=Path, required=True, help="extract_frames output folder")
    parser.add_argument("--split", type=Path, required=True, help="label split (.parquet)")
    parser.add_argument(
        "--pretrained", type=Path, required=True, help="pretrain_gitdl's model (.pt)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="metric-learned alignability model (.pt)"
    )
    parser.add_argument("--histogram", type=Path, required=True, help="score histogram (.png)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="resumption checkpoint")
    args = parser.parse_args()
    params = load_stage_params()

    with stage_run(
        "metric_learning", params, {"metric_learning": params.metric_learning.model_dump()}
    ) as child:
        result = learn_alignability(
            frames=args.frames,
            split=args.split,
            pretrained=args.pretrained,
            out=args.out,
            checkpoint=args.checkpoint,
            metric=params.metric_learning,
            augment=params.augment,
            evaluation=params.evaluate,
            run=params.run,
            health=params.health,
        )
        if child is None:  # another torchrun rank: rank 0 records the stage
            return
        record_health("metric_learning", result.health)
        mlflow.log_metric("score_fit_loss", result.metrics["score_fit_loss"])
        verification = result.verification
        plot_score_histograms(
            verification.same_class_scores,
            verification.different_class_scores,
            args.histogram,
            f"after metric learning: verification AP {verification.average_precision:.3f} "
            f"({result.monitored_subset} clips)",
        )
        mlflow.log_artifact(str(args.histogram), "plots")
        mlflow.log_artifact(str(args.out), "models")
        monitored = dict.fromkeys(["verification_ap", "distance_ap"], result.monitored_subset)
        tag_metric_subsets(child.info.run_id, monitored)


if __name__ == "__main__":
    run_stage(main)
