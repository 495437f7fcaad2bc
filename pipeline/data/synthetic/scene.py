"""Backdrops: a patterned wall above the ground line and a plain floor below it. Every class
draws from the same backdrops, so the scene says nothing about the class."""

import numpy as np

from pipeline.data.synthetic.factors import SceneFactors


def _pattern(scene: SceneFactors, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Wall texture in [-1, 1]; x, y are pixel coordinates over the frame height."""
    cos, sin = np.cos(scene.angle), np.sin(scene.angle)
    along = (x * cos + y * sin) / scene.period
    if scene.pattern == "gradient":
        return 1.0 - 2.0 * y
    if scene.pattern == "stripes":
        return np.sin(2.0 * np.pi * along + scene.phase)
    if scene.pattern == "tiles":
        across = (-x * sin + y * cos) / scene.period
        return np.sign(np.sin(np.pi * along + scene.phase)) * np.sign(np.sin(np.pi * across))
    if scene.pattern == "waves":  # three plane waves 120 degrees apart: soft blobs
        waves = [
            np.sin(2.0 * np.pi * (x * np.cos(a) + y * np.sin(a)) / scene.period + scene.phase * k)
            for k, a in enumerate(scene.angle + np.arange(3) * 2.0 * np.pi / 3.0, start=1)
        ]
        return sum(waves) / 3.0
    raise ValueError(f"unknown scene pattern {scene.pattern!r}")


def backdrop(scene: SceneFactors, height: int, width: int, ground: float) -> np.ndarray:
    """The clip's static background, (height, width, 3) floats in [0, 1]; `ground` is the
    row of the ground line as a fraction of the frame height. Both axes are measured in
    frame heights, so a wider frame shows more of the same wall."""
    rows = (np.arange(height) + 0.5) / height
    columns = (np.arange(width) + 0.5) / height
    y, x = np.meshgrid(rows, columns, indexing="ij")  # (H, W) each
    wall = np.asarray(scene.wall_rgb) + 0.5 * scene.amplitude * _pattern(scene, x, y)[..., None]
    # The floor darkens towards the camera a little, as a lit stage does.
    floor = np.asarray(scene.floor_rgb) * (1.0 - 0.3 * scene.amplitude * (y - ground))[..., None]
    image = np.where((y < ground)[..., None], wall, floor)  # (H, W, 3)
    return np.clip(image, 0.0, 1.0)
