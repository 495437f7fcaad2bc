"""Decode one video with decord into a short, small uint8 frame array.

Runs inside an extraction worker process: the decord reader is created here and never leaves
the process. Every way a video can be unusable ends in a `VideoFailure` with a status the
manifest records (missing, empty, corrupt, truncated, too_short), never in a crash of the run.
"""

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import decord
import decord.logging
import numpy as np

# decord returns frames of the wrong shape (or raises DECORDError) when the decoded width is
# one of a few small values (8, 12, 16, 24, 48 and 72 pixels seen; its frame copy infers the
# channel count from the padded row size; no bad width was found from 73 to 4000). A target
# whose first frame comes back misshapen is decoded k times wider, past this width, and
# averaged back down over k columns.
_QUIRK_MAX_WIDTH = 72
_DECORD_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")


class VideoFailure(Exception):
    """A video that cannot be used; `status` is the manifest's failure kind."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DecodeSettings:
    short_side: int  # pixels of the stored frames' short side
    max_frames: int  # longer clips are uniformly resampled to this many frames
    min_frames: int  # clips with fewer decodable frames are refused as too short


@dataclass(frozen=True)
class Decoded:
    frames: np.ndarray  # (T, H, W, 3) uint8
    source_frames: int  # frames of the clip's range that actually decode
    fps: float


def _message(error: Exception) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return _DECORD_PREFIX.sub("", lines[-1] if lines else type(error).__name__)


def mp4_truncation(path: Path) -> str | None:
    """Why an MP4/MOV file looks cut short (a top-level box runs past the end), else None."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        offset, first = 0, True
        while offset + 8 <= size:
            handle.seek(offset)
            length, kind = struct.unpack(">I4s", handle.read(8))
            if first and kind != b"ftyp":
                return None  # not an ISO media file: nothing to say about its boxes
            first = False
            if length == 1 and offset + 16 <= size:
                length = struct.unpack(">Q", handle.read(8))[0]
            elif length == 0:
                return None  # the last box runs to the end of the file by definition
            if length < 8 or not kind.isascii() or not kind.decode("ascii").isprintable():
                return None
            if offset + length > size:
                name = kind.decode("ascii")
                return f"file ends inside its '{name}' box ({size} of {offset + length} bytes)"
            offset += length
    return None


def _open(path: Path, **size: int) -> decord.VideoReader:
    decord.logging.set_level(decord.logging.QUIET)
    try:
        return decord.VideoReader(str(path), num_threads=1, **size)
    except (decord.DECORDError, RuntimeError) as error:
        truncation = mp4_truncation(path)
        if truncation:
            raise VideoFailure("truncated", f"{truncation}; decord: {_message(error)}") from None
        raise VideoFailure("corrupt", f"decord cannot open it: {_message(error)}") from None


def _target(height: int, width: int, short_side: int) -> tuple[int, int]:
    scale = short_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _first_frame_shape(reader: decord.VideoReader) -> tuple[int, ...] | None:
    """The shape of the reader's first frame, None when it fails; leaves the reader rewound."""
    try:
        shape = tuple(reader.next().shape)
    except (decord.DECORDError, RuntimeError):
        return None
    reader.seek(0)
    return shape


def _sized_reader(
    path: Path, probe: decord.VideoReader, native: tuple[int, ...], target: tuple[int, int]
) -> tuple[decord.VideoReader, int]:
    """A reader whose frames come out at `target` (or `widen` times wider), and `widen`."""
    if native == (*target, 3):
        return probe, 1
    height, width = target
    reader = _open(path, height=height, width=width)
    if _first_frame_shape(reader) == (height, width, 3):
        return reader, 1
    widen = -(-(_QUIRK_MAX_WIDTH + 1) // width)
    return _open(path, height=height, width=width * widen), widen


def _decode_range(reader: decord.VideoReader, start: int, stop: int) -> list[np.ndarray]:
    reader.seek_accurate(start)
    frames = []
    for index in range(start, stop):
        try:
            frames.append(reader.next().asnumpy())
        except StopIteration:
            break  # the container promised more frames than it holds
        except (decord.DECORDError, RuntimeError) as error:
            status = "truncated" if frames else "corrupt"
            raise VideoFailure(
                status, f"frame {index} of [{start}, {stop}) does not decode: {_message(error)}"
            ) from None
    return frames


def resample_indices(count: int, keep: int) -> np.ndarray:
    """`keep` frame indices spread uniformly over `count` frames (all of them when fewer)."""
    if count <= keep:
        return np.arange(count)
    return np.linspace(0, count - 1, keep).round().astype(np.int64)


def decode_video(
    path: Path, start: int | None, end: int | None, settings: DecodeSettings
) -> Decoded:
    """Frames start..end (both included) of `path`, resized and resampled; VideoFailure if
    it is unusable. None means the first / last frame; an end past the video is clamped."""
    if not path.exists():
        raise VideoFailure("missing", "file not found")
    if not path.is_file():
        raise VideoFailure("corrupt", "not a regular file")
    if path.stat().st_size == 0:
        raise VideoFailure("empty", "file has zero bytes")
    probe = _open(path)
    count, fps = len(probe), float(probe.get_avg_fps())
    if count == 0:
        raise VideoFailure("corrupt", "the container holds no video frames")
    native = _first_frame_shape(probe)
    if native is None:
        raise VideoFailure("corrupt", "its first frame does not decode")
    target = _target(native[0], native[1], settings.short_side)
    reader, widen = _sized_reader(path, probe, native, target)
    out_h, out_w = target
    start, stop = start or 0, min(end + 1 if end is not None else count, count)
    if start >= stop:
        raise VideoFailure("too_short", f"start_frame {start} is past the video's {count} frames")
    frames = _decode_range(reader, start, stop)
    if len(frames) < settings.min_frames:
        raise VideoFailure(
            "too_short",
            f"{len(frames)} decodable frames, fewer than min_frames {settings.min_frames}",
        )
    kept = np.stack([frames[i] for i in resample_indices(len(frames), settings.max_frames)])
    if kept.shape[1:] != (out_h, out_w * widen, 3):
        expected = (out_h, out_w * widen, 3)
        raise VideoFailure(
            "corrupt", f"decoder returned frames of {kept.shape[1:]}, not {expected}"
        )
    if widen > 1:  # (T, H, W * k, 3) -> (T, H, W, 3), each pixel the mean of k decoded ones
        kept = kept.reshape(len(kept), out_h, out_w, widen, 3).mean(axis=3).round().astype(np.uint8)
    return Decoded(frames=np.ascontiguousarray(kept), source_frames=len(frames), fps=fps)
