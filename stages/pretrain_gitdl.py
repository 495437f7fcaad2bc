"""Stage pretrain_gitdl: GITDL self-supervised pretraining of the alignability encoder on all
training videos (labels unused). Shared by every label split and method of a dataset."""

import argparse
from pathlib import Path

import mlflow

from pipeline.config import load_stage_params
from pipeline.health.record import record_health
from pipeline.models.weights import check_pretrained_weights
from pipeline.steps.pretrain import pretrain
from pipeline.subsets import tag_metric_subsets
from pipeline.tracking import stage_run
from stages import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=Path, required=True, help="extract_frames output folder")
    parser.add_argument(
        "--out", type=Path, required=True, help="pretrained alignability model (.pt)"
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="resumption checkpoint")
    args = parser.parse_args()
    params = load_stage_params()
    check_pretrained_weights(params.action_encoder, params.alignability_encoder)

    logged = {
        "gitdl": params.gitdl.model_dump(),
        "alignability_encoder": params.alignability_encoder.model_dump(),
        "clip": params.clips.alignability.model_dump(),
    }
    with stage_run("pretrain_gitdl", params, logged) as child:
        _, health = pretrain(
            frames=args.frames,
            out=args.out,
            checkpoint=args.checkpoint,
            encoder=params.alignability_encoder,
            clip=params.clips.alignability,
            augment=params.augment,
            gitdl=params.gitdl,
            run=params.run,
            health=params.health,
        )
        if child is None:  # another torchrun rank: rank 0 records the stage
            return
        record_health("pretrain_gitdl", health)
        mlflow.log_artifact(str(args.out), "models")
        tag_metric_subsets(child.info.run_id)


if __name__ == "__main__":
    run_stage(main)
