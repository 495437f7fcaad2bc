"""params.yaml is the one source of truth: the schema's defaults equal it, so a key deleted from
the file changes nothing, and the list of params that say where a run happens is one constant."""

import copy
import re
import subprocess
import sys

import pytest
import yaml
from project_imports import REPO
from test_stage_deps import stage_definitions

from pipeline.config import (
    RUN_PLACEMENT_KEYS,
    SYNTHETIC_CLASS_COUNT,
    Params,
    ParamsError,
    parse_params,
)
from pipeline.data.synthetic.design import CLASS_COUNT

RAW = yaml.safe_load((REPO / "params.yaml").read_text())


def leaf_keys(tree: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Dotted paths of the values params.yaml sets; a mapping the schema reads whole
    (self_training.rounds) is one value."""
    keys: list[tuple[str, ...]] = []
    for key, value in tree.items():
        path = (*prefix, key)
        if isinstance(value, dict) and path != ("self_training", "rounds"):
            keys += leaf_keys(value, path)
        else:
            keys.append(path)
    return keys


def without(tree: dict, path: tuple[str, ...]) -> dict:
    pruned = copy.deepcopy(tree)
    node = pruned
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return pruned


def test_schema_defaults_equal_params_yaml():
    assert Params().model_dump(mode="json") == parse_params(RAW).model_dump(mode="json")


@pytest.mark.parametrize("path", leaf_keys(RAW), ids=".".join)
def test_deleting_any_key_from_params_yaml_changes_no_value(path):
    # also the keys of nested sections (self_training.retrain.lr...), whose default lives in
    # their own section class
    expected = parse_params(RAW).model_dump(mode="json")
    assert parse_params(without(RAW, path)).model_dump(mode="json") == expected


def test_schema_bound_on_synthetic_classes_is_the_designed_count():
    assert SYNTHETIC_CLASS_COUNT == CLASS_COUNT


def test_run_placement_keys_are_named_once():
    comment = re.search(
        r"^# (run\.\w+(?:, run\.\w+)* and run\.\w+) say where",
        (REPO / "params.yaml").read_text(),
        re.MULTILINE,
    )
    assert comment, "params.yaml no longer explains which run.* keys say where a run happens"
    named = re.findall(r"run\.\w+", comment.group(1))
    assert tuple(named) == RUN_PLACEMENT_KEYS
    for key in RUN_PLACEMENT_KEYS:
        section, name = key.split(".")
        assert name in RAW[section]
    # and no stage depends on them: changing the device must not rerun anything
    for stage_name, stage in stage_definitions().items():
        listed = set(stage.get("params", []))
        assert not listed & {"run", *RUN_PLACEMENT_KEYS}, stage_name


def _write(folder, overrides: dict) -> None:
    raw = copy.deepcopy(RAW)
    for section, values in overrides.items():
        raw[section] = {**raw.get(section, {}), **values}
    (folder / "params.yaml").write_text(yaml.safe_dump(raw))


def test_a_run_outside_the_splits_is_reported_as_such():
    with pytest.raises(ParamsError) as error:
        parse_params({**RAW, "run": {**RAW["run"], "fraction": 0.15}}, "params.yaml")
    assert str(error.value) == (
        "params.yaml: 1 invalid value(s)\n"
        "  run.fraction 0.15 is not one of splits.fractions [0.05, 0.1, 0.2]; "
        "make_splits writes only those"
    )
    with pytest.raises(ParamsError, match=r"run.seed 7 is not one of splits.seeds \[0, 1, 2\]"):
        parse_params({**RAW, "run": {**RAW["run"], "seed": 7}})


@pytest.mark.parametrize(
    ("command", "overrides", "expected"),
    [
        (
            [
                sys.executable,
                "-m",
                "stages.make_splits",
                "--manifest",
                "m",
                "--classes",
                "c",
                "--out",
                "o",
            ],
            {"splits": {"seedz": [0]}, "finetune": {"epochs": -1}},
            ["splits.seedz: unknown key", "finetune.epochs: Input should be greater than"],
        ),
        (
            [sys.executable, "-m", "flows.pipeline_flow"],
            {"run": {"fraction": 0.15}},
            ["run.fraction 0.15 is not one of splits.fractions"],
        ),
        (
            [sys.executable, "-m", "pipeline.cli", "check"],
            {"splits": {"seeds": [0, 1]}, "run": {"seed": 2}},
            ["run.seed 2 is not one of splits.seeds [0, 1]"],
        ),
        (
            [sys.executable, "-m", "pipeline.cli", "compare"],
            {"evaluate": {"crops": 2}},
            ["evaluate.crops: Input should be 1 or 3"],
        ),
    ],
    ids=["stage", "pipeline-flow", "check", "compare"],
)
def test_a_params_error_is_one_message_naming_file_and_keys(
    tmp_path, stage_env, command, overrides, expected
):
    _write(tmp_path, overrides)
    result = subprocess.run(
        command, cwd=tmp_path, env=stage_env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "params.yaml" in result.stderr
    for message in expected:
        assert message in result.stderr, result.stderr
