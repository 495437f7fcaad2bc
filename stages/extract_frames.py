"""Stage extract_frames: decode every video of the dataset into memory-mappable frame arrays.

A rerun reuses every video already extracted with the same settings from the same file; the
stage fails, after writing the manifest, when more than extract.max_failed_fraction of the
videos could not be read.
"""

import argparse

import mlflow

from pipeline.config import load_stage_params
from pipeline.data.adapters import load_dataset
from pipeline.data.extract import extract_frames
from pipeline.tracking import stage_run
from stages import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset-root", required=True, help="folder holding the dataset")
    parser.add_argument("--out", required=True, help="frames folder (kept between runs)")
    args = parser.parse_args()
    params = load_stage_params()

    logged = {"dataset": params.dataset.model_dump(), "extract": params.extract.model_dump()}
    with stage_run("extract_frames", params, logged):
        dataset = load_dataset(root=args.dataset_root, params=params.dataset)
        report = extract_frames(dataset=dataset, out=args.out, params=params.extract)
        mlflow.log_metrics(report.metrics())
        if not report.failures.empty:
            mlflow.log_text(report.failures.to_csv(index=False), "failures.csv")
        report.check(params.extract.max_failed_fraction)
    print(f"{args.out}: {report.metrics()}")


if __name__ == "__main__":
    run_stage(main)
