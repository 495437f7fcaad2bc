"""A PNG strip of frames: one test video per class, decoded from its MP4 as a model sees it,
with the class's phases above each row."""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from decord import VideoReader, cpu
from PIL import Image, ImageDraw, ImageFont

from pipeline.data.adapters.diving48 import TEST_FILE, VIDEO_DIR, VOCAB_FILE

TITLE_HEIGHT = 14  # pixels of caption above each row


def write_preview(
    root: str | Path, out: str | Path, labels: Sequence[int], frames: int = 8
) -> None:
    """Write `out`: for each class in `labels` present in the dataset at `root` (Diving48
    layout), `frames` frames spread evenly over its first test video."""
    root = Path(root)
    vocab = json.loads((root / VOCAB_FILE).read_text())
    test = json.loads((root / TEST_FILE).read_text())
    first = {}
    for item in sorted(test, key=lambda item: item["vid_name"]):
        first.setdefault(item["label"], item["vid_name"])
    rows = []
    for label in (k for k in labels if k in first):
        reader = VideoReader(
            str(root / VIDEO_DIR / f"{first[label]}.mp4"), ctx=cpu(0), num_threads=1
        )
        ids = np.linspace(0, len(reader) - 1, frames).round().astype(int)
        strip = np.concatenate(
            list(reader.get_batch(list(ids)).asnumpy()), axis=1
        )  # (H, frames * W, 3)
        caption = np.full((TITLE_HEIGHT, strip.shape[1], 3), 255, dtype=np.uint8)
        row = Image.fromarray(np.concatenate([caption, strip]))
        ImageDraw.Draw(row).text(
            (2, 1),
            f"{label}: " + " / ".join(vocab[label]),
            fill=(0, 0, 0),
            font=ImageFont.load_default(size=11),
        )
        rows.append(np.asarray(row))
    if not rows:
        raise ValueError(f"{root}: none of the classes {list(labels)} has a test video")
    grid = Image.fromarray(np.concatenate(rows))
    # A 256-colour palette keeps the strip small enough for the docs; the frames hold few colours.
    grid.quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)
