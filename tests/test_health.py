"""Stage health checks: the checks themselves, and a deliberately broken run (an alignability
encoder whose backbone weights are blank, so every clip embeds alike) flagged unhealthy in
MLflow, in the stage's log and on the Prefect task, with pseudo-labelling falling back to g's
confidence for the round."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
import yaml
from mlflow.tracking import MlflowClient
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.states import State
from test_flows import task_log, task_runs
from tiny_project import make_project, run

from flows.pipeline_flow import finepseudo_pipeline
from pipeline.config import HealthParams, PseudoLabelParams
from pipeline.health.checks import (
    HealthReport,
    above_chance,
    below_chance,
    embedding_spread,
    same_class_pair_share,
)
from pipeline.health.measure import nonparametric_accuracy
from pipeline.steps.pseudo_label import round_strategy

pytestmark = pytest.mark.timeout(1200)


def test_chance_levels_and_verdicts() -> None:
    # 2 of the 6 pairs of [0, 0, 1, 1] are same-class; of [0, 0, 0, 1, 2, 3], 3 of 15
    assert same_class_pair_share(np.array([0, 0, 1, 1])) == pytest.approx(2 / 6)
    assert same_class_pair_share(np.array([0, 0, 0, 1, 2, 3])) == pytest.approx(3 / 15)
    assert above_chance("ap", 0.4, 0.2, 1.5).healthy
    assert not above_chance("ap", 0.29, 0.2, 1.5).healthy
    assert below_chance("score_loss", 0.5, math.log(2), 0.95).healthy
    assert not below_chance("score_loss", 0.68, math.log(2), 0.95).healthy
    assert not above_chance("ap", float("nan"), 0.2, 1.5).healthy  # a NaN is never healthy
    report = HealthReport("test", (above_chance("a", 1, 0.5, 1.5), below_chance("b", 1, 1, 0.9)))
    assert report.verdict == "unhealthy" and report.metrics()["health.healthy"] == 0.0
    assert "b 1 (chance 1, needs <= 0.9): unhealthy" in report.text("stage")
    assert HealthReport("nothing", ()).healthy


def test_embedding_spread_is_zero_for_a_collapse_and_about_one_over_root_d_otherwise() -> None:
    generator = torch.Generator().manual_seed(0)
    same = torch.randn(1, 8, 64, generator=generator).expand(20, 8, 64)  # (N, T, d)
    assert embedding_spread(same) == pytest.approx(0.0, abs=1e-6)
    unrelated = torch.randn(200, 8, 64, generator=generator)
    assert 0.5 / 8 < embedding_spread(unrelated) < 2 / 8


def test_nonparametric_accuracy_leaves_a_clip_out_of_its_own_exemplars() -> None:
    labels = np.array([0, 0, 1, 1])
    # Each clip scores 1 against itself only: with itself counted every clip is right by
    # self-match; left out, only the other clip of its class counts.
    self_only = np.eye(4)
    assert nonparametric_accuracy(self_only, labels, labels, 2, leave_self_out=False) == 1.0
    assert nonparametric_accuracy(self_only, labels, labels, 2, leave_self_out=True) == 0.5
    same_class = (labels[:, None] == labels[None]).astype(float)
    assert nonparametric_accuracy(same_class, labels, labels, 2, leave_self_out=True) == 1.0


@pytest.mark.parametrize(
    ("method", "rule", "healthy", "expected"),
    [
        ("finepseudo", "fallback_confidence", False, "confidence"),
        ("finepseudo", "use", False, "collaborative"),
        ("finepseudo", "fallback_confidence", True, "collaborative"),
        ("finepseudo", "fallback_confidence", None, "collaborative"),  # no verdict saved
        ("pseudo_label", "fallback_confidence", False, "confidence"),
        ("supervised", "fallback_confidence", False, None),
    ],
)
def test_round_strategy_falls_back_only_for_an_unhealthy_f(
    method: str, rule: str, healthy: bool | None, expected: str | None
) -> None:
    settings = PseudoLabelParams(strategy="collaborative", unhealthy_alignability=rule)
    assert round_strategy(method, settings, healthy) == expected


# ============ a deliberately broken run ============

ROUND = "pseudo_label@round_1"
# f's backbone from a weights file of zeros and no GITDL: every frame gives the same features,
# so no training of the temporal layers can tell clips apart (f collapses). g is untouched.
BROKEN = {
    "alignability_encoder": {"backbone": "resnet18", "backbone_weights": "blank_resnet18.pt"},
    "gitdl": {"epochs": 0},
    "metric_learning": {"epochs": 1},
    "pseudo_label": {"threshold": 0.0, "collaborative_threshold": 0.0},
    "self_training": {"rounds": {"round_1": "round_0"}},
}


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> tuple[Path, State]:
    root = make_project(tmp_path_factory.mktemp("health") / "project", BROKEN)
    blank = {k: torch.zeros_like(v) for k, v in torchvision.models.resnet18().state_dict().items()}
    torch.save(blank, root / "blank_resnet18.pt")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        patch.setenv("OMP_NUM_THREADS", "1")
        state = finepseudo_pipeline(project=str(root), stages=[ROUND], retries=0, return_state=True)
    return root, state


def _stage_run(root: Path, stage: str):
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("synthetic").experiment_id
    (found,) = client.search_runs([experiment], f"tags.stage = '{stage}'")
    return found


def test_a_collapsed_f_is_flagged_unhealthy_in_mlflow(broken: tuple[Path, State]) -> None:
    root, state = broken
    assert state.is_completed(), state.message  # unhealthy is reported, not a failure
    metrics = _stage_run(root, "metric_learning").data
    assert metrics.tags["health"] == "unhealthy"
    m = metrics.metrics
    assert m["health.healthy"] == 0.0
    assert m["health.verification_ap"] == pytest.approx(m["health.verification_ap.chance"])
    assert m["health.f_accuracy"] <= m["health.f_accuracy.chance"] * 1.5
    assert m["health.f_embedding_spread"] < 1e-4
    assert m["health.score_loss"] == pytest.approx(math.log(2), abs=0.01)
    # every training stage that ran logged a verdict
    for stage in ("pretrain_gitdl", "pretrain_action", "finetune"):
        assert _stage_run(root, stage).data.tags["health"] in {"healthy", "unhealthy"}, stage


def test_the_stage_log_and_the_flow_task_show_it(broken: tuple[Path, State]) -> None:
    root, state = broken
    report = json.loads((root / "health" / "metric_learning.json").read_text())
    assert report["verdict"] == "unhealthy"
    assert "labeled training clips" in report["clips"]  # no validation hold-out: said so
    assert {c["name"] for c in report["checks"] if not c["healthy"]} == {
        "verification_ap",
        "f_accuracy",
        "f_embedding_spread",
        "score_loss",
    }
    log = task_log(task_runs(state)["metric_learning"])
    assert any(line.startswith("health of metric_learning: unhealthy") for line in log)
    assert any("metric_learning is unhealthy: ['verification_ap'" in line for line in log)
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["health-metric-learning"]),
                # other flow tests of the session report to the same server
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            )
        )
    assert "**metric_learning: unhealthy**" in artifact.data
    assert "| f_embedding_spread |" in artifact.data and "UNHEALTHY" in artifact.data


def test_pseudo_labels_fall_back_to_g_when_f_is_unhealthy_and_say_so(
    broken: tuple[Path, State],
) -> None:
    root, _ = broken
    table = pd.read_parquet(root / "data" / "pseudo_labels" / "round_1.parquet")
    assert set(table["strategy"]) == {"confidence"}
    assert (table["f_label"] == -1).all()  # f was not consulted
    assert _stage_run(root, ROUND).data.tags["strategy"] == "confidence"

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["pseudo_label"]["unhealthy_alignability"] = "use"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run(root, "dvc", "repro", "--single-item", ROUND, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_parquet(root / "data" / "pseudo_labels" / "round_1.parquet")
    assert set(table["strategy"]) == {"collaborative"}
    assert (table["f_label"] >= 0).all()


def test_health_params_are_validated() -> None:
    with pytest.raises(ValueError, match="min_ratio"):
        HealthParams(min_ratio=0.5)
    with pytest.raises(ValueError, match="unhealthy_alignability"):
        PseudoLabelParams(unhealthy_alignability="ignore")
