"""Extract every video of a dataset into small memory-mappable frame arrays.

Output folder:
    videos/<name>.npy    uint8 (T, H, W, 3), T <= max_frames, short side = short_side
    videos/<name>.json   sidecar: the settings and source file the array was made from
    manifest.parquet     one row per annotated video (pipeline/data/manifest.py)
    classes.json         the dataset's class names, label n is entry n

The folder is kept between runs (a DVC `persist` output), so a rerun decodes only what is
missing or was made from other settings or another version of the source file; a video is
finished when its sidecar is written, after its array, both under temporary names first.
"""

import hashlib
import json
import multiprocessing
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.atomic import atomic_output
from pipeline.config import ExtractParams
from pipeline.data.adapters import Dataset
from pipeline.data.decoder import DecodeSettings, VideoFailure, decode_video
from pipeline.data.manifest import (
    CLASSES_FILE,
    MANIFEST_FILE,
    OK,
    VIDEOS_DIR,
    manifest_frame,
    write_manifest,
)

# Bump when the stored arrays change meaning, so every earlier extraction is redone.
LAYOUT_VERSION = 1
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_TMP_NAME = re.compile(r"^\..*\.tmp-\d+$")


class ExtractionError(RuntimeError):
    """Too many videos could not be extracted."""


@dataclass(frozen=True)
class ExtractionReport:
    manifest: pd.DataFrame
    decoded: int  # videos decoded in this run (the rest were reused)
    reused: int
    decoded_frames: int  # source frames decoded in this run
    seconds: float

    @property
    def failures(self) -> pd.DataFrame:
        """Manifest rows of the videos that could not be extracted."""
        return self.manifest[self.manifest["status"] != OK]

    def metrics(self) -> dict[str, float]:
        """Counts and throughput of this run, for MLflow."""
        seconds = max(self.seconds, 1e-9)
        return {
            "videos_ok": float((self.manifest["status"] == OK).sum()),
            "videos_failed": float(len(self.failures)),
            "videos_decoded": float(self.decoded),
            "videos_reused": float(self.reused),
            "frames_per_s": self.decoded_frames / seconds,
            "videos_per_s": self.decoded / seconds,
        }

    def check(self, max_failed_fraction: float) -> None:
        """Raise ExtractionError naming the failed files when too many failed."""
        failed, total = len(self.failures), len(self.manifest)
        if total and failed / total > max_failed_fraction:
            listed = [f"  {r.path}: {r.status}: {r.error}" for r in self.failures.itertuples()]
            more = [f"  ... and {failed - 50} more (see the manifest)"] if failed > 50 else []
            header = f"{failed} of {total} videos failed, more than max_failed_fraction"
            lines = [f"{header} {max_failed_fraction}:", *listed[:50], *more]
            raise ExtractionError("\n".join(lines))


def frames_name(video_id: str) -> str:
    """A file name for a video id: the id itself when safe, else a cleaned id plus a hash."""
    if _SAFE_NAME.fullmatch(video_id):
        return video_id
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", video_id).lstrip(".")
    return f"{cleaned}-{hashlib.sha1(video_id.encode()).hexdigest()[:10]}"


def _source_key(path: Path) -> dict:
    # The content, not the modification time: a fresh checkout of the same videos (a new
    # clone, an experiment workspace) must find its frames reusable and byte-identical.
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return {"sha256": None}
    return {"sha256": digest.hexdigest()}


def extract_one(task: dict) -> dict:
    """Worker: decode one video, write its array and sidecar; return its manifest fields."""
    out = Path(task["out"])
    settings = DecodeSettings(**task["settings"])
    try:
        decoded = decode_video(
            Path(task["source"]), task["start_frame"], task["end_frame"], settings
        )
    except VideoFailure as failure:
        return _failed(failure.status, str(failure))
    except Exception as error:  # a decoder surprise on one file must not end the run
        return _failed("corrupt", f"{type(error).__name__}: {error}")
    frames = decoded.frames  # (T, H, W, 3) uint8
    result = {
        "status": OK,
        "error": "",
        "n_frames": frames.shape[0],
        "source_frames": decoded.source_frames,
        "height": frames.shape[1],
        "width": frames.shape[2],
        "fps": decoded.fps,
        "frames_file": task["frames_file"],
    }
    with atomic_output(out / task["frames_file"]) as tmp, tmp.open("wb") as handle:
        np.save(handle, frames)
    with atomic_output(out / task["sidecar"]) as tmp:
        tmp.write_text(json.dumps({"key": task["key"], "result": result}, sort_keys=True))
    return result


def _failed(status: str, error: str) -> dict:
    return {
        "status": status,
        "error": error,
        "n_frames": 0,
        "source_frames": 0,
        "height": 0,
        "width": 0,
        "fps": float("nan"),
        "frames_file": "",
    }


def _reusable(out: Path, task: dict) -> dict | None:
    sidecar = out / task["sidecar"]
    if not sidecar.is_file() or not (out / task["frames_file"]).is_file():
        return None
    try:
        stored = json.loads(sidecar.read_text())
    except json.JSONDecodeError:
        return None
    return stored["result"] if stored.get("key") == task["key"] else None


def _tasks(dataset: Dataset, out: Path, params: ExtractParams) -> list[dict]:
    settings = {
        "short_side": params.short_side,
        "max_frames": params.max_frames,
        "min_frames": params.min_frames,
    }
    tasks = []
    for row in dataset.table.itertuples(index=False):
        name = frames_name(row.video_id)
        source = dataset.root / row.path
        start = None if pd.isna(row.start_frame) else int(row.start_frame)
        end = None if pd.isna(row.end_frame) else int(row.end_frame)
        key = {
            "layout": LAYOUT_VERSION,
            **settings,
            "path": row.path,
            "start_frame": start,
            "end_frame": end,
            **_source_key(source),
        }
        tasks.append(
            {
                "video_id": row.video_id,
                "out": str(out),
                "source": str(source),
                "frames_file": f"{VIDEOS_DIR}/{name}.npy",
                "sidecar": f"{VIDEOS_DIR}/{name}.json",
                "settings": settings,
                "start_frame": start,
                "end_frame": end,
                "key": key,
            }
        )
    return tasks


def _run(tasks: list[dict], workers: int) -> dict[str, dict]:
    results: dict[str, dict] = {}
    if not tasks:
        return results
    # forkserver: workers start from a clean interpreter, not a copy of this process's state;
    # preloading this module (instead of the caller's __main__, the default) means the server
    # imports only the decoding code, once, and every worker forks ready to work.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context) as pool:
        futures = {pool.submit(extract_one, task): task["video_id"] for task in tasks}
        with tqdm(total=len(tasks), desc="extract frames", unit="video") as progress:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                progress.update()
    return results


def _prune(videos: Path, keep: set[str]) -> None:
    """Remove arrays of videos no longer listed or no longer ok, and temporaries of killed runs."""
    for path in videos.iterdir():
        if _TMP_NAME.match(path.name) or f"{VIDEOS_DIR}/{path.name}" not in keep:
            path.unlink()


def extract_frames(dataset: Dataset, out: str | Path, params: ExtractParams) -> ExtractionReport:
    """Extract every video of `dataset` into `out`, reusing finished work; write the manifest."""
    out = Path(out)
    (out / VIDEOS_DIR).mkdir(parents=True, exist_ok=True)
    tasks = _tasks(dataset, out, params)
    results = {t["video_id"]: r for t in tasks if (r := _reusable(out, t)) is not None}
    todo = [t for t in tasks if t["video_id"] not in results]
    started = time.perf_counter()
    decoded = _run(todo, params.workers)
    seconds = time.perf_counter() - started
    results.update(decoded)
    rows = []
    keep = set()
    for task, row in zip(tasks, dataset.table.to_dict("records"), strict=True):
        result = results[task["video_id"]]
        rows.append({**row, **result})
        if result["status"] == OK:
            keep.update((task["frames_file"], task["sidecar"]))
    _prune(out / VIDEOS_DIR, keep)
    manifest = manifest_frame(rows)
    write_manifest(manifest, out / MANIFEST_FILE)
    with atomic_output(out / CLASSES_FILE) as tmp:
        tmp.write_text(json.dumps(dataset.classes, indent=1) + "\n")
    return ExtractionReport(
        manifest=manifest,
        decoded=len(todo),
        reused=len(tasks) - len(todo),
        decoded_frames=sum(r["source_frames"] for r in decoded.values()),
        seconds=seconds,
    )
