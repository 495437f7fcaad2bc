"""Step 4: one round of pseudo-labelling the unlabeled clips.

Each encoder embeds every video once (one central view). The alignability encoder's frame
embeddings of the unlabeled clips are scored against K_c exemplars of every class in bulk
(softDTW of all unlabeled x all exemplars), giving the non-parametric prediction p_f; the
action encoder gives p_g; the strategy decides which clips get which hard label.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.align.distance import pairwise_distance
from pipeline.config import MetricParams, PseudoLabelParams, RunParams
from pipeline.data.frames import FrameStore
from pipeline.data.splits import LabelSplit, load_split
from pipeline.health.record import saved_health
from pipeline.inference.embedding import embed_videos
from pipeline.inference.multiview import predict_videos
from pipeline.models.saved import SavedActionEncoder, load_action_encoder, load_alignability_model
from pipeline.pseudo.acceptance import decide
from pipeline.pseudo.nonparametric import class_scores, nonparametric_probs, select_exemplars
from pipeline.pseudo.round_table import COLUMNS, write_round_table
from pipeline.train.runtime import Runtime, running

# Which pseudo-label strategy each method uses; finepseudo takes it from params.
METHOD_STRATEGY = {"supervised": None, "pseudo_label": "confidence"}
NEEDS_ALIGNABILITY = {"verification", "collaborative"}


def _true_labels(store: FrameStore, split: LabelSplit, video_ids: list[str]) -> np.ndarray:
    """Model class index the dataset annotates for each clip: -1 for a novel class, NaN unknown."""
    model_label = {dataset: i for i, dataset in enumerate(split.dataset_labels)}
    annotated = store.manifest.set_index("video_id").loc[video_ids, "label"]
    return np.array(
        [model_label.get(int(a), -1) if pd.notna(a) and a >= 0 else np.nan for a in annotated]
    )


def _action_probabilities(
    action: SavedActionEncoder,
    store: FrameStore,
    video_ids: list[str],
    runtime: Runtime,
    batch_size: int,
    mc_dropout: bool = False,
) -> np.ndarray:
    """p_g of each clip from one central view: (N, C)."""
    return predict_videos(
        action.model,
        store=store,
        video_ids=video_ids,
        clip=action.clip,
        windows=1,
        crops=1,
        batch_size=batch_size,
        device=runtime.device,
        precision=runtime.precision,
        description="action encoder",
        mc_dropout=mc_dropout,
    )


def _uncertainty(probabilities: list[np.ndarray]) -> np.ndarray:
    """Std over stochastic passes (N, C each) of every clip's mean top-class probability (UPS)."""
    stacked = np.stack(probabilities)  # (passes, N, C)
    top = stacked.mean(0).argmax(1)
    return stacked[:, np.arange(len(top)), top].std(0)


def _nonparametric(
    alignability_model: Path,
    store: FrameStore,
    label_split: LabelSplit,
    video_ids: list[str],
    settings: PseudoLabelParams,
    metric: MetricParams,
    rng: np.random.Generator,
    runtime: Runtime,
) -> tuple[np.ndarray, np.ndarray]:
    """Class scores S (N, C): mean alignability score against each class's exemplars, and
    the non-parametric prediction p_f = softmax(S / tau) (N, C)."""
    saved = load_alignability_model(alignability_model)
    labeled = label_split.labeled
    exemplars = labeled.iloc[
        select_exemplars(labeled.label.to_numpy(), settings.exemplars_per_class, rng)
    ]

    def embed(ids: list[str], what: str) -> torch.Tensor:
        return embed_videos(
            saved.model,
            store=store,
            video_ids=ids,
            clip=saved.clip,
            batch_size=settings.batch_size,
            device=runtime.device,
            precision=runtime.precision,
            description=what,
        )

    unlabeled = embed(video_ids, "alignability encoder, unlabeled")  # (N, T, d)
    exemplar = embed(exemplars.video_id.tolist(), "alignability encoder, exemplars")  # (E, T, d)
    with torch.no_grad():
        distances = pairwise_distance(
            unlabeled, exemplar, metric.distance, metric.gamma, metric.band
        )  # (N, E)
        pair_scores = saved.model.score(distances)  # (N, E)
    exemplar_labels = torch.tensor(exemplars.label.to_numpy(), dtype=torch.long)
    scores = class_scores(pair_scores, exemplar_labels, len(label_split.classes))
    return scores.numpy(), nonparametric_probs(scores, settings.tau).numpy()


def round_strategy(
    method: str, settings: PseudoLabelParams, alignability_healthy: bool | None
) -> str | None:
    """The rule this round uses: the method's, or for finepseudo pseudo_label.strategy, unless
    it needs f, f's latest health check failed and unhealthy_alignability says to fall back on
    g's confidence (a collapsed f's p_f is noise that would steer the labels at random)."""
    strategy = METHOD_STRATEGY.get(method, settings.strategy)
    if (
        strategy in NEEDS_ALIGNABILITY
        and alignability_healthy is False
        and settings.unhealthy_alignability == "fallback_confidence"
    ):
        return "confidence"
    return strategy


def pseudo_label(
    *,
    frames: Path,
    split: Path,
    action_model: Path,
    alignability_model: Path,
    round_name: str,
    out: Path,
    method: str,
    settings: PseudoLabelParams,
    metric: MetricParams,
    run: RunParams,
) -> pd.DataFrame:
    """Pseudo-label the split's unlabeled clips with the previous round's models; write and
    return the round table (pipeline/pseudo/round_table.py)."""
    with running(run.device, run.threads, run.precision) as runtime:
        store = FrameStore(frames)
        label_split = load_split(split)
        video_ids = label_split.unlabeled.video_id.tolist()
        strategy = round_strategy(method, settings, saved_health(alignability_model))
        action = load_action_encoder(action_model)
        p_g = _action_probabilities(
            action, store, video_ids, runtime, settings.batch_size
        )  # (N, C)
        p_f = scores = uncertainty = None
        if strategy in NEEDS_ALIGNABILITY:
            rng = np.random.default_rng((run.seed, int(round_name.removeprefix("round_"))))
            scores, p_f = _nonparametric(
                alignability_model, store, label_split, video_ids, settings, metric, rng, runtime
            )
        if strategy == "uncertainty":
            passes = []
            for index in range(settings.dropout_passes):
                torch.manual_seed(index)
                passes.append(
                    _action_probabilities(
                        action, store, video_ids, runtime, settings.batch_size, True
                    )
                )
            uncertainty = _uncertainty(passes)

        if strategy is None:  # supervised: the round records predictions and accepts nothing
            label, confidence, accepted = (
                p_g.argmax(1),
                p_g.max(1),
                np.zeros(len(video_ids), dtype=bool),
            )
        else:
            decision = decide(
                strategy,
                p_g,
                settings.threshold_for(strategy),
                p_f=p_f,
                class_scores=scores,
                uncertainty=uncertainty,
                verification_threshold=settings.verification_threshold,
                max_uncertainty=settings.max_uncertainty,
            )
            label, confidence, accepted = decision.label, decision.confidence, decision.accepted
        label = np.asarray(label, dtype=np.int64)
        table = pd.DataFrame(
            {
                "video_id": video_ids,
                "round": round_name,
                "label": label,
                "label_name": [label_split.classes[i] for i in label],
                "confidence": np.asarray(confidence, dtype=np.float64),
                "accepted": np.asarray(accepted, dtype=bool),
                "f_label": p_f.argmax(1) if p_f is not None else np.full(len(video_ids), -1),
                "f_confidence": p_f.max(1) if p_f is not None else np.full(len(video_ids), np.nan),
                "g_label": p_g.argmax(1),
                "g_confidence": p_g.max(1).astype(np.float64),
                "true_label": _true_labels(store, label_split, video_ids),
                "strategy": strategy or "none",
            },
            columns=COLUMNS,
        )
        write_round_table(table, out)
        return table
