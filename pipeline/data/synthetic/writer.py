"""Write the synthetic benchmark to disk in the Diving48 V2 release layout:

    Diving48_V2_train.json, Diving48_V2_test.json   [{vid_name, label, start_frame, end_frame}]
    Diving48_vocab.json                              one list of phase names per class
    rgb/<vid_name>.mp4                               H.264 videos
    synthetic_factors.json                           each clip's factors, for inspection only
    preview.png                                      a strip of test frames per class

Every clip draws its factors from its own generator seeded by (seed, split, class, index),
so the output depends on the settings alone, not on the number of worker processes, and the
first N classes of a larger dataset are the same clips as a dataset of N classes.
"""

import json
import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.atomic import atomic_output
from pipeline.config import SynthesizeParams
from pipeline.data.adapters.diving48 import TEST_FILE, TRAIN_FILE, VIDEO_DIR, VOCAB_FILE
from pipeline.data.synthetic.factors import ClipFactors, sample_factors
from pipeline.data.synthetic.preview import write_preview
from pipeline.data.synthetic.render import render_motion
from pipeline.data.synthetic.variants import VARIANTS
from pipeline.data.video_writer import write_mp4

SPLIT_FILES = {"train": TRAIN_FILE, "test": TEST_FILE}
FACTORS_FILE = "synthetic_factors.json"
PREVIEW_FILE = "preview.png"


@dataclass(frozen=True)
class Clip:
    """One video of the dataset: its name, split, label and random factors."""

    vid_name: str
    split: str
    label: int
    factors: ClipFactors

    def annotation(self) -> dict:
        return {
            "vid_name": self.vid_name,
            "label": self.label,
            "start_frame": 0,
            "end_frame": self.factors.n_frames - 1,
        }


@dataclass(frozen=True)
class SynthesisSummary:
    """What was written: counts per split and in total."""

    classes: int
    train_videos: int
    test_videos: int
    frames: int

    def metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


def plan_clips(settings: SynthesizeParams) -> list[Clip]:
    """Every clip of the dataset with its name, split, label and factors, in name order.
    Names are numbered in a seeded random order of the clips, so they say nothing of the class."""
    clips = []
    shares = VARIANTS[settings.variant].segment_shares
    per_class = {"train": settings.train_per_class, "test": settings.test_per_class}
    for split_id, (split, count) in enumerate(per_class.items()):
        drawn = []
        for label in range(settings.classes):
            for i in range(count):
                rng = np.random.default_rng([settings.seed, split_id, label, i])
                drawn.append((label, sample_factors(rng, settings, shares)))
        order = np.random.default_rng([settings.seed, split_id]).permutation(len(drawn))
        clips += [Clip(f"{split}_{k:05d}", split, *drawn[j]) for k, j in enumerate(order)]
    return clips


def _write_clip(job: tuple[Path, Clip, SynthesizeParams]) -> int:
    path, clip, settings = job
    motion = VARIANTS[settings.variant].motion(clip.label, clip.factors)
    frames = render_motion(motion, clip.factors, settings)  # (T, H, W, 3)
    write_mp4(path, frames, fps=settings.fps, crf=settings.crf)
    return len(frames)


def _write_all(jobs: list[tuple[Path, Clip, SynthesizeParams]], workers: int) -> Iterator[int]:
    if workers == 1:
        yield from map(_write_clip, jobs)
        return
    # spawn, not fork: the caller may hold threads (MLflow, torch) that a fork would copy.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(_write_clip, jobs, chunksize=4)


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=1) + "\n")


def synthesize_dataset(out: str | Path, settings: SynthesizeParams) -> SynthesisSummary:
    """Generate the benchmark described by `settings` into the folder `out`, replacing it
    whole once every file is written."""
    clips = plan_clips(settings)
    variant = VARIANTS[settings.variant]
    with atomic_output(out) as tmp:
        (tmp / VIDEO_DIR).mkdir(parents=True)
        jobs = [(tmp / VIDEO_DIR / f"{c.vid_name}.mp4", c, settings) for c in clips]
        progress = tqdm(
            _write_all(jobs, settings.workers), total=len(jobs), desc="synthesize", unit="video"
        )
        frames = sum(progress)

        for split, name in SPLIT_FILES.items():
            _write_json(tmp / name, [c.annotation() for c in clips if c.split == split])
        _write_json(tmp / VOCAB_FILE, variant.vocabulary[: settings.classes])
        factors = ",\n".join(
            f"{json.dumps(c.vid_name)}: {json.dumps(c.factors.to_json())}" for c in clips
        )
        (tmp / FACTORS_FILE).write_text("{\n" + factors + "\n}\n")  # one clip per line
        write_preview(tmp, tmp / PREVIEW_FILE, variant.preview_labels)
    return SynthesisSummary(
        classes=settings.classes,
        train_videos=sum(c.split == "train" for c in clips),
        test_videos=sum(c.split == "test" for c in clips),
        frames=frames,
    )
