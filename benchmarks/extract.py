"""Frame extraction throughput: videos/s and frames/s of the extract_frames library call with
1 and 2 worker processes, beside decode-only loops over the same files with decord and PyAV.

    python -m benchmarks.extract [--dataset-root data/synthetic] [--limit N]

Reads the default dataset (Diving48 layout) when it exists; otherwise it writes a stand-in of
the same size and shape (24 classes x 62 clips, 64 x 64 pixels, 32-48 frames, H.264 at crf 18,
grain of std 4) to a temporary folder first and says so.
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from pipeline.config import DatasetParams, ExtractParams
from pipeline.data.adapters import Dataset, load_dataset
from pipeline.data.decoder import DecodeSettings, decode_video
from pipeline.data.extract import extract_frames
from pipeline.data.video_writer import write_mp4

CLASSES, PER_CLASS, SIDE = 24, 62, 64


def write_stand_in(root: Path, seed: int = 0) -> None:
    """A Diving48-layout folder of moving-square clips sized like the default benchmark."""
    rng = np.random.default_rng(seed)
    entries = {"train": [], "test": []}
    ramp = np.linspace(60, 180, SIDE, dtype=np.float32)  # (W,) a lit wall
    for index in tqdm(range(CLASSES * PER_CLASS), desc="stand-in videos", unit="video"):
        label, count = index % CLASSES, int(rng.integers(32, 49))
        frames = np.broadcast_to(ramp[None, None, :, None], (count, SIDE, SIDE, 3)).copy()
        for t in range(count):  # a square crossing the frame, its path set by the class
            y = 8 + (label * 37 + 3 * t) % (SIDE - 24)
            x = 4 + (label * 11 + 5 * t) % (SIDE - 20)
            frames[t, y : y + 16, x : x + 12] = (200, 40 + 6 * label, 60)
        frames += rng.normal(0, 4, frames.shape).astype(np.float32)  # sensor grain
        name = f"standin_{index:05d}"
        write_mp4(root / "rgb" / f"{name}.mp4", frames.clip(0, 255).astype(np.uint8))
        subset = "test" if index // CLASSES % PER_CLASS >= 50 else "train"
        entries[subset].append({"vid_name": name, "label": label, "start_frame": 0,
                                "end_frame": count - 1})  # fmt: skip
    for subset, name in (("train", "Diving48_V2_train.json"), ("test", "Diving48_V2_test.json")):
        (root / name).write_text(json.dumps(entries[subset]))
    (root / "Diving48_vocab.json").write_text(json.dumps([[f"class{c}"] for c in range(CLASSES)]))


def _av_decode(path: Path, short_side: int) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1  # one thread per video, as decord's readers are set up
        scale = short_side / min(stream.height, stream.width)
        size = {"width": round(stream.width * scale), "height": round(stream.height * scale)}
        return sum(
            1 for f in container.decode(stream) if f.to_ndarray(format="rgb24", **size) is not None
        )


def _report(name: str, videos: int, frames: int, seconds: float) -> None:
    print(f"| {name} | {videos} | {frames} | {seconds:.2f} | {videos / seconds:.0f} | "
          f"{frames / seconds:.0f} |")  # fmt: skip


def _best(repeats: int, run) -> tuple[float, object]:
    """Fastest of `repeats` runs (other work on the machine only ever adds time) and its result."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        timings.append((time.perf_counter() - started, result))
    return min(timings, key=lambda pair: pair[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset-root", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--limit", type=int, default=0, help="use only the first N videos")
    parser.add_argument("--repeats", type=int, default=3, help="report the fastest of N runs")
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory(prefix="extract-bench-")
    root = args.dataset_root
    if not (root / "Diving48_V2_train.json").is_file():
        print(f"{root} not found: writing a stand-in of {CLASSES * PER_CLASS} MP4s with write_mp4")
        root = Path(scratch.name) / "stand-in"
        write_stand_in(root)
    dataset = load_dataset(root=root, params=DatasetParams(format="diving48", root=str(root)))
    if args.limit:
        dataset = Dataset(dataset.root, dataset.table.head(args.limit), dataset.classes)
    paths = [dataset.root / p for p in dataset.table["path"]]
    defaults = ExtractParams()
    print(f"{len(paths)} videos from {root}; short side {defaults.short_side}, "
          f"max_frames {defaults.max_frames}; fastest of {args.repeats} runs\n")  # fmt: skip
    print("| method | videos | source frames | seconds | videos/s | frames/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    out = Path(scratch.name) / "frames"
    for workers in (1, 2):
        params = defaults.model_copy(update={"workers": workers})

        def fresh(params=params):
            shutil.rmtree(out, ignore_errors=True)
            return extract_frames(dataset=dataset, out=out, params=params)

        seconds, report = _best(args.repeats, fresh)
        name = f"extract_frames, {workers} worker(s), decord"
        _report(name, report.decoded, report.decoded_frames, seconds)
    seconds, report = _best(
        args.repeats, lambda: extract_frames(dataset=dataset, out=out, params=params)
    )
    _report("extract_frames rerun, all reused", report.reused, 0, seconds)
    settings = DecodeSettings(defaults.short_side, defaults.max_frames, defaults.min_frames)
    seconds, frames = _best(
        args.repeats,
        lambda: sum(decode_video(p, None, None, settings).source_frames for p in paths),
    )
    _report("decord decode_video only, 1 process", len(paths), frames, seconds)
    seconds, frames = _best(
        args.repeats, lambda: sum(_av_decode(p, defaults.short_side) for p in paths)
    )
    _report("PyAV decode + resize only, 1 process", len(paths), frames, seconds)
    scratch.cleanup()


if __name__ == "__main__":
    main()
