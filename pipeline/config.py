"""The schema of params.yaml: one pydantic model per section.

Every stage validates the whole file once, so a typo anywhere stops the pipeline before it
spends time: unknown keys, wrong types and out-of-range values are reported with the dotted
key that holds them. The library never reads params.yaml itself; stages pass it the section
it needs.
"""

import sys
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ParamsError(ValueError):
    """params.yaml is missing, malformed or holds a value the schema refuses."""


# The classes that pipeline/data/synthetic/design.py designs (a test keeps the two equal; the
# schema sits below every package of the library and imports none of them).
SYNTHETIC_CLASS_COUNT = 24

# Params that say where a run happens (device, threads, processes), not what it computes: no
# stage lists them among its dvc.yaml params, and runs that differ only in them are the same
# experiment (one MLflow parent run, one row of a comparison).
RUN_PLACEMENT_KEYS = ("run.device", "run.threads", "run.workers")
# Params that say which pipeline run this is: the ones a sweep varies.
RUN_SWEPT_KEYS = ("run.method", "run.fraction", "run.seed")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ============ data ============


class DatasetParams(Section):
    name: str = Field("synthetic", min_length=1)
    format: Literal["synthetic", "diving48", "finegym", "mmaction", "folders"] = "synthetic"
    root: str = "data/synthetic"
    train_list: str = ""
    test_list: str = ""
    classes_file: str = ""
    video_dir: str = ""
    video_suffix: str = ".mp4"

    @model_validator(mode="after")
    def _lists_named(self) -> "DatasetParams":
        if self.format in ("finegym", "mmaction"):
            for key in ("train_list", "test_list"):
                if not getattr(self, key):
                    raise ValueError(f"{key} must name a list file when format is {self.format}")
        return self


class SynthesizeParams(Section):
    variant: Literal["poses", "moves"] = "poses"
    seed: int = Field(0, ge=0)
    classes: int = Field(SYNTHETIC_CLASS_COUNT, ge=2, le=SYNTHETIC_CLASS_COUNT)
    train_per_class: int = Field(50, ge=1)
    test_per_class: int = Field(20, ge=1)
    size: int = Field(64, ge=32, le=512, multiple_of=2)
    aspect: float = Field(1.78, ge=1.0, le=3.0)
    min_frames: int = Field(32, ge=16)
    max_frames: int = Field(48, ge=16)
    fps: int = Field(25, ge=1)
    crf: int = Field(18, ge=0, le=51)
    actor_height: float = Field(0.5, gt=0.0, le=0.6)
    limb_width: float = Field(0.12, gt=0.0, le=0.3)
    zoom_jitter: float = Field(0.15, ge=0.0, le=0.5)
    shift: float = Field(0.06, ge=0.0, le=0.2)
    phase_jitter: float = Field(0.35, ge=0.0, le=1.0)
    pose_jitter: float = Field(0.12, ge=0.0, le=0.5)
    texture: float = Field(0.25, ge=0.0, le=1.0)
    contrast: float = Field(0.3, ge=0.0, le=0.6)
    noise: float = Field(4.0, ge=0.0, le=64.0)
    workers: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _frames_ordered(self) -> "SynthesizeParams":
        if self.min_frames > self.max_frames:
            raise ValueError(
                f"min_frames ({self.min_frames}) must not exceed max_frames ({self.max_frames})"
            )
        return self


class ExtractParams(Section):
    short_side: int = Field(64, ge=16, le=1024)
    max_frames: int = Field(32, ge=1)
    min_frames: int = Field(16, ge=1)
    workers: int = Field(2, ge=1)
    max_failed_fraction: float = Field(0.05, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _frames_ordered(self) -> "ExtractParams":
        if self.min_frames > self.max_frames:
            raise ValueError("min_frames must not exceed max_frames")
        return self


class OpenWorldParams(Section):
    novel_classes: int = Field(0, ge=0)
    seed: int = Field(0, ge=0)


class SplitsParams(Section):
    fractions: list[float] = Field(default_factory=lambda: [0.05, 0.1, 0.2], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    open_world: OpenWorldParams = OpenWorldParams()
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    validation_seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _fractions_in_range(self) -> "SplitsParams":
        for fraction in self.fractions:
            if not 0.0 < fraction <= 1.0:
                raise ValueError(f"fractions must lie in (0, 1], got {fraction}")
        for key, values in (("fractions", self.fractions), ("seeds", self.seeds)):
            if len(set(values)) != len(values):
                raise ValueError(f"{key} must not repeat a value, got {values}")
        if any(seed < 0 for seed in self.seeds):
            raise ValueError(f"seeds must be non-negative, got {self.seeds}")
        return self


class RunParams(Section):
    method: Literal["supervised", "pseudo_label", "finepseudo"] = "finepseudo"
    fraction: float = Field(0.1, gt=0.0, le=1.0)
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(0, ge=0)
    workers: int = Field(0, ge=0)
    precision: Literal["bf16", "fp32"] = "bf16"


# ============ models ============


class ActionEncoderParams(Section):
    arch: Literal["r2plus1d_tiny", "r2plus1d_18"] = "r2plus1d_tiny"
    widths: list[int] = Field(default_factory=lambda: [16, 32, 64], min_length=1)
    temporal_blocks: int = Field(1, ge=0)
    time_bins: int = Field(8, ge=1)
    weights: str = ""
    allow_random_init: bool = False
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    projection: int = Field(128, ge=8)

    @model_validator(mode="after")
    def _temporal_blocks_exist(self) -> "ActionEncoderParams":
        if self.temporal_blocks > len(self.widths):
            raise ValueError(
                f"temporal_blocks ({self.temporal_blocks}) exceeds the {len(self.widths)} blocks"
                " that widths defines"
            )
        return self


class AlignabilityEncoderParams(Section):
    backbone: Literal["small_cnn", "resnet18", "resnet50"] = "small_cnn"
    backbone_widths: list[int] = Field(default_factory=lambda: [16, 32, 64], min_length=1)
    backbone_weights: str = ""
    allow_random_init: bool = False
    layers: int = Field(3, ge=1)
    heads: int = Field(8, ge=1)
    hidden: int = Field(256, ge=8)
    embedding: int = Field(128, ge=8)
    projection: int = Field(128, ge=8)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    score_hidden: int = Field(16, ge=1)
    subtract_clip_mean: bool = True

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> "AlignabilityEncoderParams":
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        return self


class ClipParams(Section):
    frames: int = Field(8, ge=1)
    stride: int = Field(4, ge=1)
    crop: int = Field(48, ge=16)


class AlignabilityClipParams(ClipParams):
    frames: int = Field(16, ge=1)
    stride: int = Field(2, ge=1)


class ClipsParams(Section):
    action: ClipParams = ClipParams()
    alignability: AlignabilityClipParams = AlignabilityClipParams()


class AugmentParams(Section):
    scale: tuple[float, float] = (0.6, 1.0)
    color_jitter: float = Field(0.2, ge=0.0, le=1.0)
    hflip: bool = False


# ============ training ============


class ScheduleParams(Section):
    epochs: int = Field(10, ge=0)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_epochs: int = Field(1, ge=0)
    grad_clip: float = Field(5.0, ge=0.0)
    seed: int = Field(0, ge=0)


class TrainParams(ScheduleParams):
    batch_size: int = Field(32, ge=1)


class GitdlParams(TrainParams):
    epochs: int = Field(8, ge=0)
    tau: float = Field(0.1, gt=0.0)
    beta: float = Field(0.99, ge=0.0, le=1.0)
    sigma: float = Field(0.2, gt=0.0)
    local_span: tuple[float, float] = (0.3, 0.6)


class MetricParams(TrainParams):
    epochs: int = Field(100, ge=0)
    lr: float = Field(3e-4, gt=0.0)
    warmup_epochs: int = Field(5, ge=0)
    batch_size: int = Field(48, ge=4)
    clips_per_class: int = Field(2, ge=2)
    gamma: float = Field(0.001, gt=0.0)
    margin: float = Field(0.1, ge=0.0)
    score_weight: float = Field(1.0, ge=0.0)
    distance: Literal["softdtw", "pooled_cosine", "framewise_cosine"] = "softdtw"
    loss: Literal["triplet_score", "triplet", "score"] = "triplet_score"
    band: int = Field(0, ge=0)
    verify_every: int = Field(10, ge=1)
    score_fit_steps: int = Field(300, ge=1)
    score_fit_lr: float = Field(0.05, gt=0.0)
    score_fit_clips: int = Field(1000, ge=2)

    @model_validator(mode="after")
    def _whole_classes_per_batch(self) -> "MetricParams":
        if self.batch_size % self.clips_per_class or self.batch_size // self.clips_per_class < 2:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of clips_per_class "
                f"({self.clips_per_class}) holding at least 2 classes"
            )
        return self

    @property
    def classes_per_batch(self) -> int:
        return self.batch_size // self.clips_per_class


class FinetuneParams(TrainParams):
    epochs: int = Field(50, ge=0)
    batch_size: int = Field(16, ge=1)
    weight_decay: float = Field(1e-4, ge=0.0)
    warmup_epochs: int = Field(3, ge=0)


class PseudoLabelParams(Section):
    strategy: Literal["confidence", "uncertainty", "verification", "collaborative"] = (
        "collaborative"
    )
    threshold: float = Field(0.6, ge=0.0, le=1.0)
    collaborative_threshold: float = Field(0.6, ge=0.0, le=1.0)
    exemplars_per_class: int = Field(15, ge=1)
    tau: float = Field(0.1, gt=0.0)
    verification_threshold: float = Field(0.6, ge=0.0, le=1.0)
    max_uncertainty: float = Field(0.1, ge=0.0)
    unhealthy_alignability: Literal["fallback_confidence", "use"] = "fallback_confidence"
    dropout_passes: int = Field(10, ge=2)
    batch_size: int = Field(64, ge=1)

    def threshold_for(self, strategy: str) -> float:
        """The bar the top probability must reach: collaborative's is on (p_f + p_g) / 2."""
        return self.collaborative_threshold if strategy == "collaborative" else self.threshold


class RetrainParams(TrainParams):
    """g's training per round: `steps` optimiser steps, split evenly over `epochs` (a metrics
    line and a checkpoint after each), the same for every method."""

    epochs: int = Field(3, ge=0)
    lr: float = Field(5e-4, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    warmup_epochs: int = Field(0, ge=0)
    steps: int = Field(150, ge=1)

    @model_validator(mode="after")
    def _whole_epochs(self) -> "RetrainParams":
        if self.epochs < 1 or self.steps % self.epochs:
            raise ValueError(
                f"steps ({self.steps}) must be a multiple of epochs ({self.epochs}) >= 1"
            )
        return self

    @property
    def steps_per_epoch(self) -> int:
        return self.steps // self.epochs


class RetrainAlignabilityParams(ScheduleParams):
    epochs: int = Field(1, ge=0)
    lr: float = Field(1e-4, gt=0.0)
    warmup_epochs: int = Field(0, ge=0)


class HealthParams(Section):
    min_ratio: float = Field(1.5, ge=1.0)
    max_loss_ratio: float = Field(0.95, gt=0.0, le=1.0)
    min_spread: float = Field(0.001, ge=0.0)
    probe_videos: int = Field(64, ge=2)


class SelfTrainingParams(Section):
    rounds: dict[str, str] = Field(
        default_factory=lambda: {"round_1": "round_0", "round_2": "round_1", "round_3": "round_2"}
    )
    retrain: RetrainParams = RetrainParams()
    retrain_alignability: RetrainAlignabilityParams = RetrainAlignabilityParams()
    labeled_share: float = Field(0.5, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _rounds_chain(self) -> "SelfTrainingParams":
        expected = {f"round_{r}": f"round_{r - 1}" for r in range(1, len(self.rounds) + 1)}
        if self.rounds != expected:
            raise ValueError(
                "rounds must map each round to the one it continues from, "
                f"round_1: round_0 up to round_R: round_<R-1>, e.g. {expected}; got {self.rounds}"
            )
        return self

    @property
    def final_round(self) -> str:
        """The round whose models are evaluated; round_0 (no self-training) when rounds is empty."""
        return f"round_{len(self.rounds)}"


class EvaluateParams(Section):
    subset: Literal["test", "validation"] = "test"
    clips: int = Field(10, ge=1)
    crops: Literal[1, 3] = 3
    batch_size: int = Field(30, ge=1)


# ============ the whole file ============


class Params(Section):
    dataset: DatasetParams = DatasetParams()
    synthesize: SynthesizeParams = SynthesizeParams()
    extract: ExtractParams = ExtractParams()
    splits: SplitsParams = SplitsParams()
    run: RunParams = RunParams()
    action_encoder: ActionEncoderParams = ActionEncoderParams()
    alignability_encoder: AlignabilityEncoderParams = AlignabilityEncoderParams()
    clips: ClipsParams = ClipsParams()
    augment: AugmentParams = AugmentParams()
    gitdl: GitdlParams = GitdlParams()
    action_gitdl: GitdlParams = GitdlParams()
    metric_learning: MetricParams = MetricParams()
    finetune: FinetuneParams = FinetuneParams()
    pseudo_label: PseudoLabelParams = PseudoLabelParams()
    self_training: SelfTrainingParams = SelfTrainingParams()
    evaluate: EvaluateParams = EvaluateParams()
    health: HealthParams = HealthParams()

    @model_validator(mode="after")
    def _run_has_a_split(self) -> "Params":
        # Without this check the first stage to read the run's split would fail on a missing
        # data/splits/frac<f>_seed<s>.parquet, which says nothing about the cause.
        if self.run.fraction not in self.splits.fractions:
            raise ValueError(
                f"run.fraction {self.run.fraction} is not one of splits.fractions "
                f"{self.splits.fractions}; make_splits writes only those"
            )
        if self.run.seed not in self.splits.seeds:
            raise ValueError(
                f"run.seed {self.run.seed} is not one of splits.seeds {self.splits.seeds}; "
                "make_splits writes only those"
            )
        return self


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"{source}: {error.error_count()} invalid value(s)"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        elif not key:  # a rule across sections names its keys itself
            lines.append(f"  {message}")
        else:
            lines.append(f"  {key}: {message} (got {item.get('input')!r})")
    return "\n".join(lines)


def parse_params(raw: dict, source: str = "params") -> Params:
    """Validate an already-loaded params mapping; raise ParamsError naming every bad key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(_describe(error, source)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return parse_params(raw, str(path))


def load_stage_params(path: str | Path = "params.yaml") -> Params:
    """`load_params` for a command's entry point: a params error ends the process with exit
    status 2 and its message alone (the file and every bad key), no traceback."""
    try:
        return load_params(path)
    except ParamsError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
