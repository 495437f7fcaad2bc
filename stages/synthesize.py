"""Stage `synthesize`: generate the default dataset, a synthetic fine-grained benchmark in the
Diving48 V2 layout (docs/dataset.md)."""

import argparse
from pathlib import Path

import mlflow

from pipeline.config import load_stage_params
from pipeline.data.synthetic.writer import PREVIEW_FILE, synthesize_dataset
from pipeline.tracking import stage_run
from stages import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out", type=Path, required=True, help="dataset folder, replaced whole when done"
    )
    args = parser.parse_args()
    params = load_stage_params()

    with stage_run("synthesize", params, params.synthesize.model_dump()):
        summary = synthesize_dataset(out=args.out, settings=params.synthesize)
        mlflow.log_metrics(summary.metrics())
        mlflow.log_artifact(str(args.out / PREVIEW_FILE))


if __name__ == "__main__":
    run_stage(main)
