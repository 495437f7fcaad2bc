"""Presets: the paper-scale settings written into params.yaml, comments kept, bad ones refused."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import ParamsError, load_params
from pipeline.models.weights import check_pretrained_weights
from pipeline.presets import apply_preset
from pipeline.tracking import flatten

REPO = Path(__file__).resolve().parents[1]


def test_paper_preset_applies_validates_and_keeps_comments(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    apply_preset(params, REPO / "presets/paper.yaml")
    applied = load_params(params)
    assert applied.action_encoder.arch == "r2plus1d_18" and applied.action_gitdl.epochs == 0
    assert applied.alignability_encoder.backbone == "resnet50"
    assert applied.clips.action.crop == 112 and applied.metric_learning.batch_size == 96
    assert applied.self_training.final_round == "round_10"
    assert applied.pseudo_label.threshold_for("collaborative") == 0.6  # delta, not 0.3
    assert applied.synthesize == load_params(REPO / "params.yaml").synthesize  # untouched sections
    text = params.read_text()
    assert "# FinePseudo parameters." in text and "# softDTW smoothness" in text


def test_a_preset_with_an_unknown_key_is_refused_and_params_stay_as_they_were(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    before = params.read_text()
    preset = tmp_path / "bad.yaml"
    preset.write_text("finetune:\n  epochz: 3\n")
    with pytest.raises(ParamsError, match="finetune.epochz: unknown key"):
        apply_preset(params, preset)
    assert params.read_text() == before


# Every value presets/paper.yaml may set, as the paper states it (supplementary B unless
# noted); extract.short_side is the one addition, the room its 112-pixel crops need.
PAPER = {
    "extract.short_side": 128,
    "action_encoder.arch": "r2plus1d_18",
    "action_encoder.weights": "",
    "alignability_encoder.backbone": "resnet50",
    "alignability_encoder.backbone_weights": "",
    "alignability_encoder.layers": 3,
    "alignability_encoder.heads": 8,
    "alignability_encoder.hidden": 256,
    "alignability_encoder.embedding": 128,
    "alignability_encoder.subtract_clip_mean": False,  # the paper's VTN sees whole frames
    "clips.action.frames": 8,
    "clips.action.crop": 112,
    "clips.alignability.frames": 16,
    "clips.alignability.crop": 112,
    "gitdl.epochs": 100,
    "gitdl.warmup_epochs": 5,
    "gitdl.weight_decay": 0.0,
    "gitdl.tau": 0.1,
    "gitdl.beta": 0.99,
    "gitdl.sigma": 0.2,
    "action_gitdl.epochs": 0,
    "metric_learning.epochs": 100,
    "metric_learning.warmup_epochs": 5,
    "metric_learning.weight_decay": 0.0,
    "metric_learning.batch_size": 96,
    "metric_learning.clips_per_class": 2,
    "metric_learning.gamma": 0.001,
    "metric_learning.margin": 0.1,
    "metric_learning.distance": "softdtw",
    "metric_learning.loss": "triplet_score",
    "finetune.epochs": 100,
    "finetune.warmup_epochs": 5,
    "finetune.weight_decay": 0.0,
    "pseudo_label.strategy": "collaborative",
    "pseudo_label.threshold": 0.6,
    "pseudo_label.collaborative_threshold": 0.6,
    "pseudo_label.exemplars_per_class": 15,
    "pseudo_label.tau": 0.1,
    "pseudo_label.verification_threshold": 0.6,
    "self_training.rounds": {f"round_{r}": f"round_{r - 1}" for r in range(1, 11)},
    "self_training.retrain.epochs": 5,
    "self_training.retrain.weight_decay": 0.0,
    "self_training.retrain_alignability.epochs": 5,
    "self_training.retrain_alignability.weight_decay": 0.0,
    "evaluate.clips": 10,
    "evaluate.crops": 3,
}


def test_the_paper_preset_holds_the_papers_values_and_nothing_else():
    preset = yaml.safe_load((REPO / "presets/paper.yaml").read_text())
    rounds = preset["self_training"].pop("rounds")
    values = flatten(preset) | {"self_training.rounds": rounds}
    assert values == PAPER
    # none of the CPU preset's additions: workers, batch sizes of its own, the labeled share
    assert not any("workers" in key or key.endswith("labeled_share") for key in values)


def test_a_run_from_the_paper_preset_refuses_random_weights_naming_the_keys(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    apply_preset(tmp_path / "params.yaml", REPO / "presets/paper.yaml")
    environment = os.environ | {"PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": "sqlite:///x.db"}
    for stage in ("pretrain_action", "pretrain_gitdl"):
        result = subprocess.run(
            [sys.executable, "-m", f"stages.{stage}", "--frames", "frames", "--out", "m.pt",
             "--checkpoint", "c.pt"],
            cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode != 0
        assert "refusing to train from random weights" in result.stderr
        assert "action_encoder.weights" in result.stderr
        assert "alignability_encoder.backbone_weights" in result.stderr
    assert not (tmp_path / "x.db").exists()  # refused before any run was opened


def test_random_weights_need_an_explicit_switch_or_weights_files(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    default = load_params(tmp_path / "params.yaml")
    check_pretrained_weights(default.action_encoder, default.alignability_encoder)  # CPU preset
    apply_preset(tmp_path / "params.yaml", REPO / "presets/paper.yaml")
    paper = load_params(tmp_path / "params.yaml")
    action, alignability = paper.action_encoder, paper.alignability_encoder
    with pytest.raises(ParamsError, match="alignability_encoder.backbone resnet50") as refused:
        check_pretrained_weights(action.model_copy(update={"weights": "tclr.pth"}), alignability)
    assert "action_encoder.arch" not in str(refused.value).split(". Set")[0]
    with pytest.raises(ParamsError, match="action_encoder.arch r2plus1d_18"):
        check_pretrained_weights(
            action, alignability.model_copy(update={"allow_random_init": True})
        )
    check_pretrained_weights(
        action.model_copy(update={"allow_random_init": True}),
        alignability.model_copy(update={"backbone_weights": "resnet50.pth"}),
    )
