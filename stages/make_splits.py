"""Stage make_splits: the labeled / unlabeled split of the training videos for every labeled
fraction x split seed, plus the validation videos and the model's classes."""

import argparse
import json
from pathlib import Path

import mlflow

from pipeline.config import load_stage_params
from pipeline.data.manifest import read_manifest
from pipeline.data.splits import make_splits
from pipeline.tracking import stage_run
from stages import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", required=True, help="manifest.parquet of extract_frames")
    parser.add_argument("--classes", required=True, help="classes.json of extract_frames")
    parser.add_argument("--out", required=True, help="folder of the split files")
    args = parser.parse_args()
    params = load_stage_params()

    with stage_run("make_splits", params, {"splits": params.splits.model_dump()}):
        sizes = make_splits(
            manifest=read_manifest(args.manifest),
            classes=json.loads(Path(args.classes).read_text()),
            params=params.splits,
            out=args.out,
        )
        mlflow.log_metrics({f"videos.{name}": float(size) for name, size in sizes.items()})
    print(f"{args.out}: {sizes}")


if __name__ == "__main__":
    run_stage(main)
