"""The pipeline benchmark's model FLOPs per training item (its MFU column), on the default
params: every training stage is counted."""

from tiny_project import REPO

from benchmarks.pipeline import flops_per_item
from pipeline.config import load_params


def test_every_training_stage_has_model_flops() -> None:
    per_item = flops_per_item(load_params(REPO / "params.yaml"), classes=24)

    assert set(per_item) == {
        "pretrain_gitdl", "pretrain_action", "metric_learning", "finetune",
        "retrain/action_", "retrain/alignability_",
    }  # fmt: skip
    assert all(flops > 0 for flops in per_item.values()), per_item
    # the frozen backbone of metric learning gets no weight gradients: cheaper than GITDL per clip
    assert per_item["metric_learning"] < per_item["pretrain_gitdl"] / 2
