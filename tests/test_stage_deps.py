"""dvc.yaml deps that cannot drift: every project file a stage runs is among its deps.

Each stage's command names its entry, `python -m stages.<name>`; walking the imports from
there (the source read with `ast`, nothing imported) gives every file of pipeline/, stages/
and flows/ that the stage can execute. A file missing from the deps means an edit to it would
leave stale results that `dvc repro` calls up to date.
"""

import re

import pytest
import yaml
from project_imports import PROJECT_PACKAGES, REPO, module_file, transitive_files
from tiny_project import make_project, run

ENTRY = re.compile(r"python -m (stages\.\w+)")


# The pipeline files: the top-level one and the synthetic benchmark's
PIPELINE_FILES = (REPO / "dvc.yaml", REPO / "synthetic" / "dvc.yaml")


def stage_definitions() -> dict[str, dict]:
    """Stage name -> its definition, from every pipeline file; a `foreach` stage counts once, by
    its `do` template (its deps on project files do not depend on the item). Every stage works
    from the project root, so its paths are relative to it."""
    definitions = {}
    for dvc_yaml in PIPELINE_FILES:
        for name, stage in yaml.safe_load(dvc_yaml.read_text())["stages"].items():
            stage = stage.get("do", stage)
            wdir = (dvc_yaml.parent / stage.get("wdir", ".")).resolve()
            assert wdir == REPO, f"{dvc_yaml}: stage {name} works in {wdir}, not the project root"
            definitions[name] = stage
    return definitions


def dep_paths(stage: dict) -> list[str]:
    return [next(iter(dep)) if isinstance(dep, dict) else dep for dep in stage.get("deps", [])]


def covered(path: str, deps: list[str]) -> bool:
    """A dep covers itself and, when it is a folder, every file under it."""
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def missing_deps(stage: dict) -> list[str]:
    """Project files the stage imports (transitively) that its deps do not cover."""
    entry = module_file(ENTRY.search(stage["cmd"]).group(1))
    assert entry is not None, f"{stage['cmd']!r} names no file under stages/"
    files = transitive_files(entry)
    deps = dep_paths(stage)
    return sorted(
        relative
        for relative in (path.relative_to(REPO).as_posix() for path in files)
        if relative.split("/")[0] in PROJECT_PACKAGES and not covered(relative, deps)
    )


def test_every_stage_runs_a_stages_script():
    for name, stage in stage_definitions().items():
        assert ENTRY.search(stage["cmd"]), f"stage {name}: command does not run stages.<name>"


def test_every_imported_project_file_is_a_dep_of_its_stage():
    definitions = stage_definitions()
    missing = {name: files for name, stage in definitions.items() if (files := missing_deps(stage))}
    report = "\n".join(f"  {name}: {', '.join(files)}" for name, files in missing.items())
    assert not missing, f"dvc.yaml deps miss project files their stage imports:\n{report}"


def test_every_project_file_dep_is_imported_by_its_stage():
    # a stale file dep reruns the stage for edits that cannot change its outputs
    for name, stage in stage_definitions().items():
        entry = module_file(ENTRY.search(stage["cmd"]).group(1))
        imported = {path.relative_to(REPO).as_posix() for path in transitive_files(entry)}
        for dep in dep_paths(stage):
            if dep.endswith(".py") and dep.split("/")[0] in PROJECT_PACKAGES:
                assert dep in imported, f"stage {name}: dep {dep} is not imported by it"


def test_no_dep_names_a_project_file_that_does_not_exist():
    for name, stage in stage_definitions().items():
        for dep in dep_paths(stage):
            if dep.split("/")[0] in PROJECT_PACKAGES:
                assert (REPO / dep).exists(), f"stage {name}: dep {dep} does not exist"


def test_the_walk_follows_function_level_and_package_imports(tmp_path):
    # A lazy import inside a function and `from package import module` both count, and so
    # does the __init__.py of every package on the way.
    (tmp_path / "stages").mkdir()
    (tmp_path / "pipeline" / "sub").mkdir(parents=True)
    for init in ("stages", "pipeline", "pipeline/sub"):
        (tmp_path / init / "__init__.py").write_text("")
    (tmp_path / "stages" / "entry.py").write_text(
        "def main():\n    from pipeline.sub import lazy\n"
    )
    (tmp_path / "pipeline" / "sub" / "lazy.py").write_text("from . import deep\n")
    (tmp_path / "pipeline" / "sub" / "deep.py").write_text("import os\n")
    (tmp_path / "pipeline" / "unused.py").write_text("")
    files = transitive_files(tmp_path / "stages" / "entry.py", tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in files} == {
        "stages/__init__.py",
        "stages/entry.py",
        "pipeline/__init__.py",
        "pipeline/sub/__init__.py",
        "pipeline/sub/lazy.py",
        "pipeline/sub/deep.py",
    }


@pytest.mark.parametrize("dataset_format", ["synthetic", "diving48"])
def test_dvc_repro_renders_the_synthetic_videos_only_for_the_synthetic_dataset(
    tmp_path, diving48_dataset, dataset_format
):
    # `dvc repro --dry --keep-going` prints every stage `dvc repro` would run whose inputs are
    # there, from DVC's own graph of the project (no stage runs)
    if dataset_format == "synthetic":
        dataset = {"format": "synthetic", "root": "data/synthetic"}
    else:
        dataset = {"format": "diving48", "root": str(diving48_dataset())}
    project = make_project(tmp_path / "project", {"dataset": dataset})
    planned = run(project, "dvc", "repro", "--dry", "--keep-going", check=False).stdout
    renders = "Running stage 'synthetic/dvc.yaml:synthesize'" in planned
    assert renders == (dataset_format == "synthetic"), planned
    assert ("Running stage 'extract_frames'" in planned) == (dataset_format == "diving48")
    assert not (project / "data" / "synthetic").exists()
