"""The baselines end to end through real `dvc repro` on the tiny project: the `pseudo_label`
method (confidence pseudo-labels from the action encoder alone) and finepseudo with the
`uncertainty` strategy, whose dropout-pass filter is what decides acceptance."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from tiny_project import environment, make_project, merge, run

from pipeline.pseudo.round_table import COLUMNS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

# One round: it trains on the labeled + accepted clips (each once in its list; the batches
# mix them at self_training.labeled_share).
OVERRIDES = {
    "run": {"method": "pseudo_label"},
    "pseudo_label": {"threshold": 0.3},
    "self_training": {"rounds": {"round_1": "round_0"}},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("methods") / "project", OVERRIDES)


def repro(project: Path, overrides: dict) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    (project / "params.yaml").write_text(yaml.safe_dump(merge(params, overrides), sort_keys=False))
    result = run(project, "dvc", "repro", check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def stage_runs(project: Path, method: str, stage: str) -> list:
    client = MlflowClient(environment(project)["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("synthetic").experiment_id
    (parent,) = client.search_runs(
        [experiment], f"tags.`finepseudo.pipeline` LIKE '{method}-%' and tags.method = '{method}'"
    )
    assert parent.info.status == "FINISHED" and "top1" in parent.data.metrics
    return client.search_runs(
        [experiment],
        f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' and tags.stage = '{stage}'",
    )


def round_table(project: Path) -> pd.DataFrame:
    table = pd.read_parquet(project / "data/pseudo_labels/round_1.parquet")
    assert list(table.columns) == COLUMNS
    split = pd.read_parquet(project / "data/splits/frac0.5_seed0.parquet")
    assert set(table.video_id) == set(split.loc[split.subset == "unlabeled", "video_id"])
    return table


def labeled_clips(project: Path) -> int:
    split = pd.read_parquet(project / "data/splits/frac0.5_seed0.parquet")
    return int((split.subset == "labeled").sum())


def test_pseudo_label_method_accepts_the_action_encoders_confident_labels(project):
    repro(project, {})
    table = round_table(project)
    # g alone: f's columns are empty, the label and confidence are g's top class
    assert (table.f_label == -1).all() and table.f_confidence.isna().all()
    np.testing.assert_array_equal(table.label, table.g_label)
    np.testing.assert_allclose(table.confidence, table.g_confidence)
    np.testing.assert_array_equal(table.accepted, table.confidence >= 0.3)
    (retrain,) = stage_runs(project, "pseudo_label", "retrain@round_1")
    assert retrain.data.metrics["training_clips"] == labeled_clips(project) + table.accepted.sum()
    (labelling,) = stage_runs(project, "pseudo_label", "pseudo_label@round_1")
    assert labelling.data.metrics["pseudo_labels"] == table.accepted.sum()


def test_uncertainty_strategy_rejects_clips_whose_dropout_passes_disagree(project):
    # threshold 0 passes every clip on confidence; a zero uncertainty bar then rejects every
    # clip whose top-class probability moves at all over the dropout passes: all of them
    repro(
        project,
        {
            "run": {"method": "finepseudo"},
            "pseudo_label": {"strategy": "uncertainty", "threshold": 0.0, "max_uncertainty": 0.0},
        },
    )
    table = round_table(project)
    assert (table.f_label == -1).all()  # the uncertainty strategy does not use f
    np.testing.assert_array_equal(table.label, table.g_label)
    assert (table.confidence >= 0.0).all() and not table.accepted.any()
    (retrain,) = stage_runs(project, "finepseudo", "retrain@round_1")
    assert retrain.data.metrics["training_clips"] == labeled_clips(project)

    # the same models with a bar no clip can miss: every clip is accepted
    repro(project, {"pseudo_label": {"max_uncertainty": 1.0}})
    assert round_table(project).accepted.all()
