"""The comparison protocol of docs/protocol.md: the test labels are read by the evaluate step
alone, and the default data geometry gives the test protocol every different view it can: three
different crops, and as many different windows as the stored frames leave room for."""

import ast
import itertools
from pathlib import Path

import numpy as np
import torch

from pipeline.config import load_params
from pipeline.data.clips import evenly_spaced_windows
from pipeline.data.datasets import ViewsDataset
from pipeline.data.decoder import DecodeSettings, decode_video
from pipeline.data.synthetic.factors import sample_factors
from pipeline.data.synthetic.render import frame_width, render_clip
from pipeline.data.video_writer import write_mp4

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = load_params(REPO / "params.yaml")
# The only functions that hand out test clips' labels, and the one module that may call them.
TEST_LABEL_READERS = {"labeled_test_clips", "evaluation_set"}
DEFINED_IN = "pipeline/data/splits.py"
EVALUATE_STEP = "pipeline/steps/evaluate.py"


def _names_used(path: Path) -> set[str]:
    """Every name a module refers to: plain names, attributes and imported names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            used.update(alias.name.split(".")[-1] for alias in node.names)
    return used


def test_only_the_evaluate_step_reads_test_labels():
    sources = [
        path
        for folder in ("pipeline", "stages", "flows")
        for path in sorted((REPO / folder).rglob("*.py"))
    ]
    readers = {
        str(path.relative_to(REPO)) for path in sources if _names_used(path) & TEST_LABEL_READERS
    }
    assert readers == {DEFINED_IN, EVALUATE_STEP}
    # and splits.py reads the manifest's test rows in labeled_test_clips alone
    tree = ast.parse((REPO / DEFINED_IN).read_text())
    touching_test = {
        function.name
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef)
        and any(
            isinstance(node, ast.Constant) and node.value == "test" for node in ast.walk(function)
        )
    }
    assert touching_test <= {"labeled_test_clips", "evaluation_set"}


def _view_geometry(stored_frames: int) -> tuple[np.ndarray, list[int]]:
    """The test protocol's windows (frame indices) and crop offsets along the long side for a
    default video of `stored_frames` frames, from the values in params.yaml."""
    synth, extract, clip = DEFAULTS.synthesize, DEFAULTS.extract, DEFAULTS.clips.action
    height, width = synth.size, frame_width(synth)
    stored_h = extract.short_side
    stored_w = round(width * extract.short_side / height)
    windows = evenly_spaced_windows(
        stored_frames, clip.frames, clip.stride, DEFAULTS.evaluate.clips
    )
    resized_w = round(stored_w * clip.crop / stored_h)  # eval_views: short side to the crop
    offsets = np.linspace(0, resized_w - clip.crop, DEFAULTS.evaluate.crops).round()
    return windows, offsets.astype(int).tolist()


def _distinct_starts(stored_frames: int) -> int:
    """How many different frames g's windows can start on in a video of `stored_frames`."""
    clip = DEFAULTS.clips.action
    span = (clip.frames - 1) * clip.stride + 1
    return min(DEFAULTS.evaluate.clips, max(stored_frames - span + 1, 1))


def test_the_default_geometry_gives_every_different_view_it_can():
    synth, extract = DEFAULTS.synthesize, DEFAULTS.extract
    assert (DEFAULTS.evaluate.clips, DEFAULTS.evaluate.crops) == (10, 3)
    assert frame_width(synth) / synth.size >= 16 / 9 - 0.05  # landscape, not square
    for length in range(synth.min_frames, synth.max_frames + 1):
        stored = min(length, extract.max_frames)
        windows, offsets = _view_geometry(stored)
        assert len(windows) == 10, f"{length} frames"
        assert len(set(offsets)) == 3, offsets
        # the windows start on as many different frames as a clip's span leaves room for
        assert len(set(windows[:, 0])) == _distinct_starts(stored), f"{length} frames"


def test_the_views_of_a_real_rendered_video_differ_wherever_their_geometry_does(tmp_path):
    # the shortest default video: fewest frames for the windows to spread over
    shortest = DEFAULTS.synthesize.model_copy(update={"max_frames": DEFAULTS.synthesize.min_frames})
    factors = sample_factors(np.random.default_rng(0), shortest)
    video = tmp_path / "clip.mp4"
    write_mp4(video, render_clip(0, factors, shortest), shortest.fps, shortest.crf)
    extract = DEFAULTS.extract
    decoded = decode_video(
        video, None, None, DecodeSettings(extract.short_side, extract.max_frames, 1)
    )
    assert decoded.frames.shape[1] == extract.short_side < decoded.frames.shape[2]

    class OneVideo:  # the one method of FrameStore that ViewsDataset reads
        def frames(self, video_id: str) -> np.ndarray:
            return decoded.frames

    clip = DEFAULTS.clips.action
    views = ViewsDataset(OneVideo(), ["clip"], clip, DEFAULTS.evaluate.clips, 3)[0]
    assert views.shape == (30, 3, clip.frames, clip.crop, clip.crop)
    windows, offsets = _view_geometry(len(decoded.frames))
    # view v is window v // 3 under crop v % 3 (ViewsDataset's order)
    geometry = [(int(windows[v // 3, 0]), offsets[v % 3]) for v in range(30)]
    assert len(set(geometry)) == 3 * _distinct_starts(len(decoded.frames))
    for a, b in itertools.combinations(range(30), 2):
        if geometry[a] == geometry[b]:
            assert torch.equal(views[a], views[b]), (a, b)
        else:
            assert (views[a] - views[b]).abs().mean() > 0.01, (a, b)
