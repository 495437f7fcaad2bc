"""Apply a preset (a partial params file, such as presets/paper.yaml) to params.yaml.

The preset's values replace those in params.yaml key by key; keys it does not name, and every
comment in params.yaml, stay as they were. The result is validated before it is written.
"""

from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from pipeline.atomic import atomic_output
from pipeline.config import ParamsError, parse_params


def _overlay(target: CommentedMap, preset: dict) -> None:
    # Sections merge; leaves and the rounds chain (a whole that must stay consistent) replace.
    for key, value in preset.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict) and key != "rounds":
            _overlay(target[key], value)
        else:
            target[key] = value


def apply_preset(params_path: str | Path, preset_path: str | Path) -> None:
    """Write `preset_path`'s values into `params_path`; ParamsError if the result is invalid."""
    yaml = YAML()  # round-trip mode keeps comments and key order
    params = yaml.load(Path(params_path).read_text())
    preset = YAML(typ="safe").load(Path(preset_path).read_text()) or {}
    if not isinstance(preset, dict):
        raise ParamsError(f"{preset_path}: a preset is a mapping of params sections")
    _overlay(params, preset)
    parse_params(params, f"{params_path} with {preset_path}")
    with atomic_output(params_path) as tmp, open(tmp, "w") as handle:
        yaml.dump(params, handle)
