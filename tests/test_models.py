"""The two encoders: shapes of every preset (the paper-scale ones at paper resolution, on the
CPU), local weights files, and frozen backbones."""

import pytest
import torch

from pipeline.checkpoint import load_checkpoint, save_checkpoint
from pipeline.config import (
    ActionEncoderParams,
    AlignabilityEncoderParams,
    ClipParams,
    ParamsError,
    parse_params,
)
from pipeline.models.action import FramewiseTrunk
from pipeline.models.registry import (
    build_action_encoder,
    build_alignability_encoder,
    build_alignability_model,
)
from pipeline.models.saved import (
    SavedAlignabilityModel,
    load_alignability_model,
    save_alignability_model,
)
from pipeline.models.weights import load_backbone_weights


def test_tiny_action_encoder_maps_clips_to_class_logits():
    model = build_action_encoder(ActionEncoderParams(widths=[8, 16, 32]), num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 8, 48, 48)).shape == (2, 7)
        assert model(torch.randn(1, 3, 16, 64, 80)).shape == (1, 7)  # any clip geometry


def test_tiny_action_encoder_sees_frame_order_only_through_its_time_bins():
    clips = torch.randn(2, 3, 8, 48, 48)
    torch.manual_seed(0)
    ordered = build_action_encoder(ActionEncoderParams(widths=[8, 16]), num_classes=5).eval()
    torch.manual_seed(0)
    bag = build_action_encoder(
        ActionEncoderParams(widths=[8, 16], temporal_blocks=0, time_bins=1), num_classes=5
    ).eval()
    with torch.no_grad():
        assert not torch.allclose(ordered(clips), ordered(clips.flip(2)), atol=1e-4)
        # no temporal convolution and one time bin: a bag of frames, blind to order
        torch.testing.assert_close(bag(clips), bag(clips.flip(2)), atol=1e-5, rtol=1e-5)


def test_tiny_action_trunk_is_a_frame_encoder_for_gitdl():
    model = build_action_encoder(ActionEncoderParams(widths=[8, 16]), num_classes=5)
    trunk = FramewiseTrunk(model, projection=6).eval()
    clips = torch.randn(2, 3, 12, 48, 48)
    with torch.no_grad():
        features = trunk(clips)
        assert features.shape == (2, 12, 16)  # every frame kept, trunk width
        assert trunk.project(features).shape == (2, 12, 6)
        # the last frames' features do not depend on the first frames beyond the kernel's reach
        changed = clips.clone()
        changed[:, :, :4] = 0
        torch.testing.assert_close(trunk(changed)[:, 6:], features[:, 6:])
    # GITDL trains the action encoder's own weights (not a copy), which finetune starts from
    assert {id(p) for p in model.parameters()} <= {id(p) for p in trunk.parameters()}


def test_gitdl_pretraining_refuses_the_paper_action_encoder():
    model = build_action_encoder(ActionEncoderParams(arch="r2plus1d_18"), num_classes=5)
    with pytest.raises(ValueError, match="needs r2plus1d_tiny.*action_gitdl.epochs: 0"):
        FramewiseTrunk(model, projection=8)


def test_more_temporal_blocks_than_blocks_is_refused():
    with pytest.raises(ParamsError, match="action_encoder: .*temporal_blocks \\(3\\) exceeds"):
        parse_params({"action_encoder": {"widths": [8, 16], "temporal_blocks": 3}})


def test_small_vtn_embeds_every_frame():
    encoder = build_alignability_encoder(
        AlignabilityEncoderParams(
            backbone_widths=[8, 16], hidden=32, heads=4, embedding=16, projection=8
        )
    ).eval()
    with torch.no_grad():
        embeddings = encoder(torch.randn(2, 3, 12, 48, 48))
        assert embeddings.shape == (2, 12, 16)
        assert encoder.project(embeddings).shape == (2, 12, 8)
        # positions matter: reversing the frames is not reversing the embeddings
        reversed_embeddings = encoder(torch.randn(2, 3, 12, 48, 48).flip(2))
        assert reversed_embeddings.shape == embeddings.shape


@pytest.mark.parametrize("subtract_clip_mean", [True, False])
def test_vtn_is_blind_to_the_static_scene_only_when_it_subtracts_the_clip_mean(subtract_clip_mean):
    torch.manual_seed(0)
    encoder = build_alignability_encoder(
        AlignabilityEncoderParams(
            backbone_widths=[8, 16], hidden=32, heads=4, subtract_clip_mean=subtract_clip_mean
        )
    ).eval()
    clips = torch.randn(2, 3, 12, 48, 48)
    scene = torch.randn(2, 3, 1, 48, 48)  # another backdrop, the same in every frame
    with torch.no_grad():
        same = torch.allclose(encoder(clips), encoder(clips + scene), atol=1e-5)
    assert same == subtract_clip_mean


def test_model_files_from_before_the_clip_mean_load_as_whole_frame_encoders(tmp_path):
    params = AlignabilityEncoderParams(backbone_widths=[8], hidden=32, heads=4)
    saved = SavedAlignabilityModel(build_alignability_model(params), params, ClipParams())
    save_alignability_model(tmp_path / "now.pt", saved, metrics={})
    assert load_alignability_model(tmp_path / "now.pt").model.encoder.subtract_clip_mean
    checkpoint = load_checkpoint(tmp_path / "now.pt")
    del checkpoint["config"]["encoder"]["subtract_clip_mean"]  # as an older version wrote it
    save_checkpoint(tmp_path / "older.pt", checkpoint)
    older = load_alignability_model(tmp_path / "older.pt")
    assert not older.encoder.subtract_clip_mean and not older.model.encoder.subtract_clip_mean


def test_frozen_backbone_stays_frozen_and_in_eval_mode():
    encoder = build_alignability_encoder(
        AlignabilityEncoderParams(backbone_widths=[8], hidden=32, heads=4)
    )
    encoder.freeze_backbone()
    encoder.train()
    assert not encoder.backbone.training and encoder.temporal.training
    assert not any(p.requires_grad for p in encoder.backbone.parameters())
    assert all(p.requires_grad for p in encoder.temporal.parameters())


def test_paper_scale_action_encoder_at_paper_resolution():
    model = build_action_encoder(ActionEncoderParams(arch="r2plus1d_18"), num_classes=48).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 112, 112)).shape == (1, 48)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_paper_scale_vtn_at_paper_resolution(backbone):
    encoder = build_alignability_encoder(AlignabilityEncoderParams(backbone=backbone)).eval()
    with torch.no_grad():
        assert encoder(torch.randn(1, 3, 16, 224, 224)).shape == (1, 16, 128)


def test_local_weights_load_into_the_backbone_and_mismatches_name_the_file(tmp_path):
    source = build_action_encoder(ActionEncoderParams(arch="r2plus1d_18"), num_classes=400)
    path = tmp_path / "r2plus1d_18.pth"
    torch.save(source.state_dict(), path)
    target = build_action_encoder(
        ActionEncoderParams(arch="r2plus1d_18", weights=str(path)), num_classes=48
    )
    assert torch.equal(target.stem[0].weight, source.stem[0].weight)
    assert target.fc[-1].out_features == 48

    wrong = tmp_path / "resnet18.pth"
    torch.save(
        build_alignability_encoder(
            AlignabilityEncoderParams(backbone="resnet18")
        ).backbone.state_dict(),
        wrong,
    )
    with pytest.raises(ValueError, match="resnet18.pth: does not fit"):
        build_action_encoder(
            ActionEncoderParams(arch="r2plus1d_18", weights=str(wrong)), num_classes=48
        )
    with pytest.raises(ValueError, match="missing.pth: weights file not found"):
        load_backbone_weights(target, tmp_path / "missing.pth")
