"""Stage pseudo_label (one per self-training round): pseudo-label the unlabeled clips with the
previous round's encoders and write round_<r>.parquet."""

import argparse
from pathlib import Path

import mlflow

from pipeline.config import load_stage_params
from pipeline.pseudo.round_table import round_statistics
from pipeline.steps.pseudo_label import pseudo_label
from pipeline.subsets import tag_metric_subsets
from pipeline.tracking import stage_run
from stages import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--round", required=True, help="this round's name, round_<r>")
    parser.add_argument("--frames", type=Path, required=True, help="extract_frames output folder")
    parser.add_argument("--split", type=Path, required=True, help="label split (.parquet)")
    parser.add_argument("--models", type=Path, required=True, help="previous round's model folder")
    parser.add_argument(
        "--out", type=Path, required=True, help="this round's pseudo-labels (.parquet)"
    )
    args = parser.parse_args()
    params = load_stage_params()

    with stage_run(
        f"pseudo_label@{args.round}", params, {"pseudo_label": params.pseudo_label.model_dump()}
    ) as child:
        table = pseudo_label(
            frames=args.frames,
            split=args.split,
            action_model=args.models / "action.pt",
            alignability_model=args.models / "alignability.pt",
            round_name=args.round,
            out=args.out,
            method=params.run.method,
            settings=params.pseudo_label,
            metric=params.metric_learning,
            run=params.run,
        )
        statistics = round_statistics(table, confidence_threshold=params.pseudo_label.threshold)
        # which rule the round used: pseudo_label.strategy, or confidence after f failed its
        # health check (pseudo_label.unhealthy_alignability)
        mlflow.set_tag("strategy", table["strategy"].iloc[0] if len(table) else "none")
        mlflow.log_metrics(statistics)
        mlflow.log_artifact(str(args.out), "pseudo_labels")
        # from the unlabeled training clips' hidden labels: diagnostics, never a criterion
        tag_metric_subsets(child.info.run_id)
    print(f"{args.out}: {statistics}")


if __name__ == "__main__":
    run_stage(main)
