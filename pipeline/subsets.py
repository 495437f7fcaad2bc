"""Which data a logged metric was computed on, recorded in MLflow beside it.

Every training and evaluation stage tags its run with `subset.<metric>` for each metric it
logged: `train` (training batches, the labeled clips, or the hidden labels of the unlabeled
training clips, read as diagnostics), `validation` (the hold-out of splits.validation_fraction)
or `test` (read by the evaluate stage alone). Search them with, e.g.,
`tags."subset.top1" = 'test'`.
"""

from collections.abc import Mapping

from mlflow.tracking import MlflowClient

TRAIN, VALIDATION, TEST = "train", "validation", "test"
TAG_PREFIX = "subset."


def tag_metric_subsets(
    run_id: str, subsets: Mapping[str, str] | None = None, default: str = TRAIN
) -> dict[str, str]:
    """Tag every metric run `run_id` holds with its subset: `subsets` names those that did not
    come from `default`. Returns the tags set."""
    unknown = set((subsets or {}).values()) | {default}
    if not unknown <= {TRAIN, VALIDATION, TEST}:
        raise ValueError(f"subsets must be {TRAIN}, {VALIDATION} or {TEST}; got {sorted(unknown)}")
    client = MlflowClient()  # the tracking URI the stage's run uses
    names = client.get_run(run_id).data.metrics
    tags = {f"{TAG_PREFIX}{name}": (subsets or {}).get(name, default) for name in names}
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    return tags
