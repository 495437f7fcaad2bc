"""Stage finetune: supervised fine-tuning of the action encoder on one label split's
labeled clips, the starting point of self-training (round 0)."""

import argparse
from pathlib import Path

import mlflow

from pipeline.config import load_stage_params
from pipeline.health.record import record_health
from pipeline.steps.finetune import finetune
from pipeline.subsets import tag_metric_subsets
from pipeline.tracking import stage_run
from stages import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=Path, required=True, help="extract_frames output folder")
    parser.add_argument("--split", type=Path, required=True, help="label split (.parquet)")
    parser.add_argument(
        "--pretrained", type=Path, required=True, help="pretrain_action's trunk weights (.pt)"
    )
    parser.add_argument("--out", type=Path, required=True, help="the trained action encoder (.pt)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="resumption checkpoint")
    args = parser.parse_args()
    params = load_stage_params()

    logged = {
        "finetune": params.finetune.model_dump(),
        "action_encoder": params.action_encoder.model_dump(),
    }
    with stage_run("finetune", params, logged) as child:
        _, health = finetune(
            frames=args.frames,
            split=args.split,
            pretrained=args.pretrained,
            out=args.out,
            checkpoint=args.checkpoint,
            encoder=params.action_encoder,
            clip=params.clips.action,
            augment=params.augment,
            train=params.finetune,
            run=params.run,
            health=params.health,
        )
        if child is None:  # another torchrun rank: rank 0 records the stage
            return
        record_health("finetune", health)
        mlflow.log_artifact(str(args.out), "models")
        tag_metric_subsets(child.info.run_id)


if __name__ == "__main__":
    run_stage(main)
