"""Build both encoders from their params sections: the one place that maps names to models."""

from torch import nn

from pipeline.config import ActionEncoderParams, AlignabilityEncoderParams
from pipeline.models.action import TinyR2Plus1D, r2plus1d_paper
from pipeline.models.alignability import AlignabilityModel
from pipeline.models.vtn import AlignabilityEncoder, SmallCNN, torchvision_backbone
from pipeline.models.score import AlignabilityScore


def build_action_encoder(params: ActionEncoderParams, num_classes: int) -> nn.Module:
    """Action encoder g: clips (B, C, T, H, W) -> logits (B, num_classes)."""
    if params.arch == "r2plus1d_18":
        return r2plus1d_paper(num_classes, params.dropout, params.weights)
    return TinyR2Plus1D(
        num_classes, params.widths, params.temporal_blocks, params.time_bins, params.dropout
    )


def build_alignability_encoder(params: AlignabilityEncoderParams) -> AlignabilityEncoder:
    """The alignability encoder f: clips (B, C, T, H, W) -> frame embeddings (B, T, embedding)."""
    if params.backbone == "small_cnn":
        backbone = SmallCNN(params.backbone_widths)
    else:
        backbone = torchvision_backbone(params.backbone, params.backbone_weights)
    return AlignabilityEncoder(
        backbone,
        hidden=params.hidden,
        layers=params.layers,
        heads=params.heads,
        embedding=params.embedding,
        projection=params.projection,
        dropout=params.dropout,
        subtract_clip_mean=params.subtract_clip_mean,
    )


def build_alignability_model(params: AlignabilityEncoderParams) -> AlignabilityModel:
    """Encoder f with a fresh learnable alignability score head."""
    return AlignabilityModel(
        build_alignability_encoder(params), AlignabilityScore(hidden=params.score_hidden)
    )
