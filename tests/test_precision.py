"""run.precision: bf16 autocast for the models' passes, float32 for what follows them, and
channels-last convolutions that compute what contiguous ones do."""

import torch

from pipeline.config import (
    ActionEncoderParams,
    AlignabilityEncoderParams,
    GitdlParams,
    MetricParams,
)
from pipeline.models.registry import build_action_encoder, build_alignability_model
from pipeline.objectives.gitdl import GitdlObjective
from pipeline.objectives.metric import MetricObjective
from pipeline.precision import channels_last, model_autocast

CPU = torch.device("cpu")
SMALL_F = AlignabilityEncoderParams(backbone_widths=[8, 16], layers=1, hidden=32, embedding=16)


def test_bf16_runs_the_model_in_bfloat16_and_the_metric_loss_in_float32():
    torch.manual_seed(0)
    model = build_alignability_model(SMALL_F)
    clips = torch.randn(8, 3, 8, 32, 32)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    with model_autocast(CPU, "bf16"):
        assert model.encoder(clips).dtype == torch.bfloat16
        outputs = MetricObjective(model, MetricParams(margin=0.1))((clips, labels))
    with model_autocast(CPU, "fp32"):
        assert model.encoder(clips).dtype == torch.float32
        reference = MetricObjective(model, MetricParams(margin=0.1))((clips, labels))
    assert outputs["loss"].dtype == torch.float32
    # bfloat16 embeddings move the loss by about their three significant digits, no more
    assert torch.isclose(outputs["loss"], reference["loss"], rtol=0.05)
    outputs["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_bf16_gitdl_loss_is_computed_in_float32():
    torch.manual_seed(0)
    encoder = build_alignability_model(SMALL_F).encoder
    frames = 8
    batch = {
        "global": torch.randn(4, 3, frames, 32, 32),
        "local": torch.randn(4, 3, frames, 32, 32),
        "global_pos": torch.arange(frames).repeat(4, 1),
        "local_pos": torch.arange(frames).repeat(4, 1),
        "timestamps": torch.linspace(0, 1, frames).repeat(4, 1),
        "valid": torch.ones(4, frames, dtype=torch.bool),
    }
    with model_autocast(CPU, "bf16"):
        loss = GitdlObjective(encoder, GitdlParams())(batch)["loss"]
    reference = GitdlObjective(encoder, GitdlParams())(batch)["loss"]
    assert loss.dtype == torch.float32
    assert torch.isclose(loss, reference, rtol=0.05)


def test_channels_last_convolutions_give_the_same_outputs():
    torch.manual_seed(0)
    action = build_action_encoder(ActionEncoderParams(), 5)
    action.eval()
    clips = torch.randn(2, 3, 8, 48, 48)
    with torch.no_grad():
        before = action(clips)
        after = channels_last(action)(clips)
    assert any(
        p.dim() == 5 and p.is_contiguous(memory_format=torch.channels_last_3d)
        for p in action.parameters()
    )
    assert torch.allclose(before, after, atol=1e-5)
