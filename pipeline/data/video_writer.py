"""Encode frames as an H.264 MP4 file, the format every dataset adapter reads."""

from pathlib import Path

import av
import numpy as np

from pipeline.atomic import atomic_output


def write_mp4(path: str | Path, frames: np.ndarray, fps: int = 25, crf: int = 18) -> None:
    """Write uint8 RGB frames (T, H, W, 3) to `path` with libx264 (yuv420p, even sides)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"{path}: expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}"
        )
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"{path}: yuv420p needs even frame sides, got {height}x{width}")
    with atomic_output(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            # One thread and no B-frame lookahead: many small videos encode fastest this way.
            # mbtree off: with it, libx264 encodes the same frames differently from one process
            # to the next, and a seeded dataset must decode to the same frames every time.
            stream.options = {
                "crf": str(crf),
                "preset": "veryfast",
                "threads": "1",
                "x264-params": "mbtree=0",
            }
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
