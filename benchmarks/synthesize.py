"""Time the generation of the default synthetic dataset (params.yaml's synthesize section)
with 1 and 2 worker processes, and the rendering alone, without encoding or writing.

    python -m benchmarks.synthesize [--workers 1 2]
"""

import argparse
import tempfile
import time
from pathlib import Path

from pipeline.config import load_params
from pipeline.data.synthetic.render import render_clip
from pipeline.data.synthetic.writer import plan_clips, synthesize_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="pool sizes to time")
    args = parser.parse_args()
    settings = load_params().synthesize

    rows = []
    clips = plan_clips(settings)
    render_clip(clips[0].label, clips[0].factors, settings)  # compile the drawing kernel first
    start = time.perf_counter()
    frames = sum(len(render_clip(c.label, c.factors, settings)) for c in clips)
    rows.append(("render only, 1 process", len(clips), frames, time.perf_counter() - start))
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            summary = synthesize_dataset(
                out=Path(folder) / "synthetic",
                settings=settings.model_copy(update={"workers": workers}),
            )
            seconds = time.perf_counter() - start
        videos = summary.train_videos + summary.test_videos
        rows.append((f"synthesize_dataset, {workers} worker(s)", videos, summary.frames, seconds))

    print("| run | videos | frames | seconds | videos/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, videos, frames, seconds in rows:
        print(f"| {name} | {videos} | {frames} | {seconds:.1f} | {videos / seconds:.0f} |")


if __name__ == "__main__":
    main()
