"""Presets: the paper-scale settings written into params.yaml, comments kept, bad ones refused."""

import shutil
from pathlib import Path

import pytest

from pipeline.config import ParamsError, load_params
from pipeline.presets import apply_preset

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
