"""The stage graph of dvc.yaml, read through DVC itself, so no stage is declared twice.

DVC resolves templating and `foreach` (a `pseudo_label` entry becomes `pseudo_label@round_1`,
`pseudo_label@round_2`, ...) and knows which stage's outputs another stage reads; the flows take
both from it.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import RUN_SWEPT_KEYS

if TYPE_CHECKING:
    from dvc.stage import PipelineStage

# The section that holds the keys a sweep varies (RUN_SWEPT_KEYS): a stage that reads none of
# them, directly or through a stage upstream, gives the same outputs for every run.
RUN_SECTION = "run"


@dataclass(frozen=True)
class Stage:
    """One DVC stage: its address, the stages whose outputs it reads, and whether it reads
    a key the sweep varies (the `run` section's RUN_SWEPT_KEYS) itself."""

    name: str
    upstream: tuple[str, ...]
    reads_run: bool


@dataclass(frozen=True)
class StageGraph:
    """The pipeline's stages in an order DVC can run them one by one (upstream first)."""

    stages: tuple[Stage, ...]

    @property
    def names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    def with_upstream(self, targets: list[str]) -> list[Stage]:
        """`targets` and every stage they depend on, in running order."""
        unknown = [name for name in targets if name not in self.names]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; dvc.yaml has {self.names}")
        by_name = {stage.name: stage for stage in self.stages}
        wanted: set[str] = set()
        pending = list(targets)
        while pending:
            name = pending.pop()
            if name not in wanted:
                wanted.add(name)
                pending.extend(by_name[name].upstream)
        return [stage for stage in self.stages if stage.name in wanted]

    def shared(self) -> list[Stage]:
        """Stages whose outputs are the same for every method, label fraction and split seed:
        neither they nor any stage upstream read a key the sweep varies."""
        per_run: set[str] = set()
        for stage in self.stages:  # upstream first, so per_run is complete for every upstream
            if stage.reads_run or per_run.intersection(stage.upstream):
                per_run.add(stage.name)
        return [stage for stage in self.stages if stage.name not in per_run]


def _reads_run(stage: "PipelineStage") -> bool:
    for dependency in stage.params:
        keys = dependency.params
        if not keys:  # the whole params file
            return True
        if any(key == RUN_SECTION or key in RUN_SWEPT_KEYS for key in keys):
            return True
    return False


def _address(stage: "PipelineStage", root: str) -> str:
    """The stage's address as `dvc repro` takes it from the project root (DVC's own
    `addressing` is relative to the working directory)."""
    file = os.path.relpath(stage.path, root)
    return stage.name if file == "dvc.yaml" else f"{file}:{stage.name}"


def read_stage_graph(project: str | Path) -> StageGraph:
    """The stages that `dvc repro` runs in the DVC project at `project`, in its order: those of
    the top-level dvc.yaml and every stage they read from (synthetic/dvc.yaml's `synthesize`
    only when the dataset is the synthetic one).

    Only stages with a command are kept (a `.dvc` file that tracks data is no stage to run).
    """
    from dvc.repo import Repo
    from dvc.repo.reproduce import plan_repro
    from dvc.stage import PipelineStage

    with Repo(str(project)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        stages = []
        for stage in plan_repro(graph):
            if not isinstance(stage, PipelineStage):
                continue
            upstream = [dep for dep in graph.successors(stage) if isinstance(dep, PipelineStage)]
            stages.append(
                Stage(
                    name=_address(stage, repo.root_dir),
                    upstream=tuple(sorted(_address(dep, repo.root_dir) for dep in upstream)),
                    reads_run=_reads_run(stage),
                )
            )
    graph = StageGraph(tuple(stages))
    return StageGraph(tuple(graph.with_upstream([s.name for s in stages if ":" not in s.name])))
