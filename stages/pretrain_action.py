"""Stage pretrain_action: GITDL self-supervised pretraining of the action encoder's trunk on
all training videos (labels unused), on the same global/local views as pretrain_gitdl
(clips.alignability). Shared by every label split and method of a dataset."""

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
    parser.add_argument("--out", type=Path, required=True, help="pretrained trunk weights (.pt)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="resumption checkpoint")
    args = parser.parse_args()
    params = load_stage_params()
    check_pretrained_weights(params.action_encoder, params.alignability_encoder)

    logged = {
        "action_gitdl": params.action_gitdl.model_dump(),
        "action_encoder": params.action_encoder.model_dump(),
        "clip": params.clips.alignability.model_dump(),
    }
    with stage_run("pretrain_action", params, logged) as child:
        _, health = pretrain(
            frames=args.frames,
            out=args.out,
            checkpoint=args.checkpoint,
            encoder=params.action_encoder,
            clip=params.clips.alignability,
            augment=params.augment,
            gitdl=params.action_gitdl,
            run=params.run,
            health=params.health,
        )
        if child is None:  # another torchrun rank: rank 0 records the stage
            return
        record_health("pretrain_action", health)
        mlflow.log_artifact(str(args.out), "models")
        tag_metric_subsets(child.info.run_id)


if __name__ == "__main__":
    run_stage(main)
