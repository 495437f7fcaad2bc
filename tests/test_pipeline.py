"""The whole pipeline through real `dvc repro` on a tiny synthetic dataset: every stage, two
self-training rounds, the model files, the pseudo-label tables, the MLflow runs and registry,
resuming a stage that was killed, the same f from the same inputs, and `finepseudo predict`."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from tiny_project import REPO, environment, make_project, run

from pipeline.checkpoint import load_checkpoint
from pipeline.config import ActionEncoderParams, load_params
from pipeline.models.registry import build_action_encoder
from pipeline.models.saved import load_action_encoder, load_alignability_model
from pipeline.pseudo.round_table import COLUMNS
from pipeline.steps.metric_learning import learn_alignability

pytestmark = pytest.mark.slow  # the whole tiny pipeline through `dvc repro`

STAGES = [
    "extract_frames",
    "make_splits",
    "pretrain_gitdl",
    "pretrain_action",
    "metric_learning",
    "finetune",
    "pseudo_label@round_1",
    "retrain@round_1",
    "pseudo_label@round_2",
    "retrain@round_2",
    "evaluate",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # threshold 0 accepts every pseudo-label, so retraining provably reads them; 2 of each
    # class's 6 training clips held out give monitoring same-class validation pairs
    root = make_project(
        tmp_path_factory.mktemp("pipeline") / "project",
        {
            "pseudo_label": {
                "threshold": 0.0,
                "collaborative_threshold": 0.0,
                # the tiny f is unhealthy; these tests follow the collaborative rule itself
                "unhealthy_alignability": "use",
            },
            "splits": {"validation_fraction": 0.34},
        },
    )
    result = run(root, "dvc", "repro", check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return root


def _client(root: Path) -> MlflowClient:
    return MlflowClient(environment(root)["MLFLOW_TRACKING_URI"])


def _runs(root: Path) -> list:
    client = _client(root)
    experiment = client.get_experiment_by_name("synthetic")
    return client.search_runs([experiment.experiment_id], max_results=1000)


def test_every_stage_ran_and_a_second_repro_changes_nothing(project):
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert sorted(lock) == sorted(STAGES)
    synthetic_lock = yaml.safe_load((project / "synthetic" / "dvc.lock").read_text())["stages"]
    assert list(synthetic_lock) == ["synthesize"]
    again = run(project, "dvc", "repro")
    assert "Data and pipelines are up to date." in again.stdout
    assert "Running stage" not in again.stdout


def test_model_files_rebuild_their_networks_from_weights_only_checkpoints(project):
    classes = json.loads((project / "data/splits/classes.json").read_text())["classes"]
    for round_name in ("round_0", "round_1", "round_2"):
        action = load_action_encoder(project / "models" / round_name / "action.pt")
        assert action.classes == classes and action.clip.frames == 4
        with torch.no_grad():
            assert action.model.eval()(torch.zeros(2, 3, 4, 24, 24)).shape == (2, len(classes))
        alignability = load_alignability_model(project / "models" / round_name / "alignability.pt")
        with torch.no_grad():
            assert alignability.model.eval()(torch.zeros(2, 3, 8, 24, 24)).shape == (2, 8, 8)
    pretrained = load_checkpoint(project / "models/pretrained/alignability.pt")
    metric_learned = load_checkpoint(project / "models/round_0/alignability.pt")
    assert pretrained["config"]["kind"] == metric_learned["config"]["kind"] == "alignability_model"
    changed = [
        k
        for k in pretrained["model"]
        if not torch.equal(pretrained["model"][k], metric_learned["model"][k])
    ]
    assert any(k.startswith("encoder.temporal") for k in changed)
    assert not any(
        k.startswith("encoder.backbone") and "running" not in k for k in changed
    )  # frozen
    assert not (project / "checkpoints/finetune.pt").exists()  # resumption files go when done


def test_finetune_starts_from_the_self_supervised_trunk(project):
    pretrained = torch.load(project / "models/pretrained/action.pt", weights_only=True)
    trunk = pretrained["state_dict"]
    assert pretrained["metrics"]["loss"] > 0 and not any(k.startswith("fc.") for k in trunk)
    fresh = build_action_encoder(ActionEncoderParams(widths=[4, 8]), num_classes=4).state_dict()
    assert sorted(trunk) == sorted(k for k in fresh if not k.startswith("fc."))
    # GITDL trained it (BatchNorm counted its batches) and finetune carried on from there: its
    # count is the trunk's plus finetune's own steps, not finetune's steps alone
    pretraining_steps = int(trunk["stem.1.num_batches_tracked"])
    assert pretraining_steps > 0
    settings = yaml.safe_load((project / "params.yaml").read_text())["finetune"]
    split = pd.read_parquet(project / "data/splits/frac0.5_seed0.parquet")
    labeled = int((split.subset == "labeled").sum())
    finetune_steps = labeled // settings["batch_size"] * settings["epochs"]  # full batches only
    finetuned = load_checkpoint(project / "models/round_0/action.pt")["model"]
    assert "fc.weight" in finetuned
    assert int(finetuned["stem.1.num_batches_tracked"]) == pretraining_steps + finetune_steps


def test_round_tables_follow_the_schema_and_the_acceptance_rule(project):
    split = pd.read_parquet(project / "data/splits/frac0.5_seed0.parquet")
    unlabeled = set(split.loc[split.subset == "unlabeled", "video_id"])
    for round_name in ("round_1", "round_2"):
        table = pd.read_parquet(project / "data/pseudo_labels" / f"{round_name}.parquet")
        assert list(table.columns) == COLUMNS
        assert set(table.video_id) == unlabeled and (table["round"] == round_name).all()
        assert (table.accepted == (table.confidence >= 0.0)).all() and table.accepted.all()
        assert ((table.f_confidence > 0) & (table.f_confidence <= 1)).all()  # finepseudo used f
        assert table.true_label.notna().all() and table.true_label.between(0, 3).all()
        np.testing.assert_array_equal(
            table.label,
            table.label_name.map(
                {
                    name: i
                    for i, name in enumerate(
                        json.loads((project / "data/splits/classes.json").read_text())["classes"]
                    )
                }
            ),
        )


def test_mlflow_holds_the_parent_run_with_every_stage_and_the_registered_model(project):
    runs = _runs(project)
    parents = [r for r in runs if "finepseudo.pipeline" in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {"top1", "top5", "mean_class_accuracy"} <= set(parent.data.metrics)
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    assert parent.data.metrics["top1"] == pytest.approx(metrics["top1"])
    children = {
        r.data.tags["stage"]: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert sorted(children) == sorted(["synthesize", *STAGES])  # synthesize: synthetic/dvc.yaml
    assert all(r.info.status == "FINISHED" for r in children.values())
    assert (
        "loss" in children["finetune"].data.metrics
        and "verification_ap" in children["metric_learning"].data.metrics
    )
    retrain = children["retrain@round_1"].data.metrics
    assert {"action_loss", "alignability_loss"} <= set(retrain)
    # of the 24 training clips 8 are validation ones, 8 labeled and 8 accepted pseudo-labels
    assert retrain["training_clips"] == 16
    assert children["pseudo_label@round_1"].data.metrics["pseudo_labels"] == 8
    # the equal budget: 6 steps of 4 clips, half of them labeled, logged with the round
    assert (retrain["action_steps"], retrain["action_batch_size"]) == (6, 4)
    assert retrain["action_labeled_per_batch"] == retrain["action_pseudo_labeled_per_batch"] == 2
    # every metric says which subset it came from; only evaluate's come from the test set
    tags = {stage: run.data.tags for stage, run in children.items()}
    assert tags["metric_learning"]["subset.verification_ap"] == "validation"
    assert tags["metric_learning"]["subset.loss"] == "train"
    assert tags["finetune"]["subset.loss"] == "train"
    assert tags["pseudo_label@round_1"]["subset.pseudo_label_accuracy"] == "train"
    assert tags["evaluate"]["subset.top1"] == parent.data.tags["subset.top1"] == "test"
    for stage, stage_tags in tags.items():
        subsets = {v for k, v in stage_tags.items() if k.startswith("subset.")}
        assert subsets <= ({"test"} if stage == "evaluate" else {"train", "validation"}), stage

    client = _client(project)
    (version,) = client.search_model_versions("name = 'finepseudo-synthetic'")
    assert (
        json.loads(version.tags["classes"])
        == json.loads((project / "data/splits/classes.json").read_text())["classes"]
    )
    assert float(version.tags["top1"]) == pytest.approx(metrics["top1"], abs=1e-5)
    mlflow.set_tracking_uri(environment(project)["MLFLOW_TRACKING_URI"])
    registered = mlflow.pytorch.load_model(f"models:/finepseudo-synthetic/{version.version}")
    saved = load_action_encoder(project / "models/round_2/action.pt")
    clips = torch.randn(5, 3, 4, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(
            registered(clips), saved.model.eval()(clips), atol=1e-5, rtol=1e-4
        )


def test_retraining_takes_the_same_steps_every_round(project):
    steps = yaml.safe_load((project / "params.yaml").read_text())["self_training"]["retrain"]
    counts = [
        int(
            load_checkpoint(project / "models" / r / "action.pt")["model"][
                "stem.1.num_batches_tracked"
            ]
        )
        for r in ("round_0", "round_1", "round_2")
    ]
    assert np.diff(counts).tolist() == [steps["steps"]] * 2


def _copy_as_pseudo_label(project: Path, copy: Path) -> None:
    """A copy of the project switched to method pseudo_label: f then plays no part in the
    pseudo-labels and g's training, so every output but f's is bit-reproducible."""
    shutil.copytree(project, copy, symlinks=True)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["run"]["method"] = "pseudo_label"
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    saved = torch.load(path, weights_only=True)
    return saved["state_dict"] if "state_dict" in saved else saved["model"]


def test_scrambled_test_labels_change_nothing_before_evaluate(project, tmp_path):
    same, scrambled = tmp_path / "same", tmp_path / "scrambled"
    _copy_as_pseudo_label(project, same)
    result = run(same, "dvc", "repro", "retrain@round_2", check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    _copy_as_pseudo_label(project, scrambled)
    manifest_path = scrambled / "data/frames/manifest.parquet"
    manifest = pd.read_parquet(manifest_path)
    test = manifest["subset"] == "test"
    labels = manifest.loc[test, "label"].to_numpy()
    manifest.loc[test, "label"] = np.roll(labels, 1)  # every test clip gets another's label
    assert (manifest.loc[test, "label"].to_numpy() != labels).any()
    manifest_path.unlink()  # DVC links outputs from its cache: write a new file
    manifest.to_parquet(manifest_path, index=False)
    run(scrambled, "dvc", "commit", "-f", "-q", "extract_frames")
    result = run(scrambled, "dvc", "repro", check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for stage in STAGES[2:]:  # every stage after extraction reran on the scrambled manifest
        assert f"Running stage '{stage}'" in result.stdout, stage

    for name in sorted(p.name for p in (same / "data/splits").iterdir()):
        assert (same / "data/splits" / name).read_bytes() == (
            scrambled / "data/splits" / name
        ).read_bytes(), name
    for round_name in ("round_1", "round_2"):
        tables = [
            pd.read_parquet(root / "data/pseudo_labels" / f"{round_name}.parquet")
            for root in (same, scrambled)
        ]
        pd.testing.assert_frame_equal(*tables)
    models = ["pretrained/alignability.pt", "pretrained/action.pt"] + [
        f"{r}/action.pt" for r in ("round_0", "round_1", "round_2")
    ]
    for name in models:
        before, after = (_weights(root / "models" / name) for root in (same, scrambled))
        assert before.keys() == after.keys()
        for key, value in before.items():
            assert torch.equal(value, after[key]), (name, key)
    # Metric learning is reproducible to float rounding only (two runs on the same inputs
    # differ by about 1e-8 in f's encoder), so f's encoder is compared to a tolerance; its
    # score head, fitted afterwards on the tiny set, amplifies those differences, so it is not.
    before, after = (
        _weights(root / "models/round_0/alignability.pt") for root in (same, scrambled)
    )
    for key, value in before.items():
        if key.startswith("encoder."):
            torch.testing.assert_close(value, after[key], rtol=0, atol=1e-3, msg=key)
    # and evaluate did read the scrambled labels
    actual = [
        pd.read_csv(root / "plots/predictions.csv")["actual"] for root in (project, scrambled)
    ]
    assert (actual[0] != actual[1]).any()


def test_evaluation_writes_metrics_predictions_per_class_table_and_confusion_plot(project):
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    assert 0.0 <= metrics["top1"] <= metrics["top5"] <= 1.0 and metrics["clips"] == 8
    predictions = pd.read_csv(project / "plots/predictions.csv")
    assert len(predictions) == 8
    assert (predictions.actual == predictions.predicted).mean() == pytest.approx(metrics["top1"])
    per_class = pd.read_csv(project / "plots/per_class.csv")
    assert per_class.clips.sum() == 8 and len(per_class) == 4
    assert (project / "plots/confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_training_code_reads_the_diagnostic_true_label():
    readers = sorted(
        str(path.relative_to(REPO))
        for path in (REPO / "pipeline").rglob("*.py")
        if "true_label" in path.read_text()
    )
    # written and summarised for diagnostics only; training reads TRAINING_COLUMNS
    assert readers == ["pipeline/pseudo/round_table.py", "pipeline/steps/pseudo_label.py"]
    source = (REPO / "pipeline/pseudo/round_table.py").read_text()
    assert 'TRAINING_COLUMNS = ["video_id", "label", "accepted"]' in source


def test_predict_classifies_good_files_and_reports_broken_ones(project, tmp_path):
    video = next((project / "data/synthetic/rgb").glob("*.mp4"))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    result = run(
        project,
        "finepseudo",
        "predict",
        str(video),
        str(broken),
        str(tmp_path / "missing.mp4"),
        "--top-k",
        "3",
        check=False,
    )
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if line.startswith(str(video)))
    probabilities = [float(p) for p in re.findall(r" (\d\.\d{3})", line)]
    assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert f"{broken}: error: corrupt" in result.stderr
    assert "missing.mp4: error: missing" in result.stderr


def test_metric_learning_learns_the_same_f_from_the_same_inputs(project, tmp_path):
    # The step gives f a fresh score head; drawn from torch's unseeded generator, it made f,
    # and every finepseudo figure after it, differ from one run of the same split to the next.
    params = load_params(project / "params.yaml")
    threads = torch.get_num_threads()  # the step sets run.threads for this whole process
    weights = []
    for attempt in ("first", "second"):
        learn_alignability(
            frames=project / "data/frames",
            split=project / "data/splits/frac0.5_seed0.parquet",
            pretrained=project / "models/pretrained/alignability.pt",
            out=tmp_path / f"{attempt}.pt",
            checkpoint=tmp_path / f"{attempt}_checkpoint.pt",
            metric=params.metric_learning,
            augment=params.augment,
            evaluation=params.evaluate,
            run=params.run,
            health=params.health,
        )
        weights.append(load_checkpoint(tmp_path / f"{attempt}.pt")["model"])
    torch.set_num_threads(threads)
    first, second = weights
    assert sorted(first) == sorted(second) and any(k.startswith("score.") for k in first)
    assert [k for k in first if not torch.equal(first[k], second[k])] == []


def test_a_stage_killed_mid_training_resumes_from_its_checkpoint(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["finetune"]["epochs"] = 40
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    checkpoint = project / "checkpoints/finetune.pt"
    process = subprocess.Popen(
        ["dvc", "repro", "finetune"],
        cwd=project,
        env=environment(project),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (
        checkpoint.exists() and load_checkpoint(checkpoint)["epoch"] >= 2
    ):
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = load_checkpoint(checkpoint)["epoch"]
    assert 2 <= killed_at < 39

    result = run(project, "dvc", "repro", "finetune")
    assert f"resuming from checkpoints/finetune.pt after epoch {killed_at}" in result.stdout
    assert not checkpoint.exists()
    assert load_checkpoint(project / "models/round_0/action.pt")["metrics"]["lr"] == pytest.approx(
        0.0, abs=1e-9
    )
    finetune_runs = [r for r in _runs(project) if r.data.tags.get("stage") == "finetune"]
    statuses = sorted(r.info.status for r in finetune_runs)
    assert statuses == ["FINISHED", "FINISHED", "KILLED"]  # first repro, killed one, resumed one
