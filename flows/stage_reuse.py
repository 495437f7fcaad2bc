"""How much work a sweep reused: what DVC said it did with each stage of each job.

A sweep of C combinations over a pipeline of S stages would run C x S stages with nothing
shared. DVC runs fewer: the shared stages once, then every job finds them unchanged
(`skipped`, their outputs checked out through dvc.lock), and a stage whose command and inputs
already ran for another combination is restored from DVC's run-cache (`cached`).
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from flows.dvc_command import DvcCommandError, Verdict, repro_verdict


def stage_verdicts(stages: Iterable[str], output: list[str]) -> dict[str, Verdict]:
    """What `dvc repro` or `dvc exp run` did with each of `stages` that its `output` mentions."""
    verdicts: dict[str, Verdict] = {}
    for stage in stages:
        try:
            verdicts[stage] = repro_verdict(stage, output)
        except DvcCommandError:
            continue  # not part of this run (a stage outside the targets)
    return verdicts


@dataclass
class ReuseCount:
    """Stage runs of a sweep by what DVC did: ran the command, restored it from the run-cache,
    or found it unchanged; `jobs` holds each job's stage -> verdict."""

    jobs: dict[str, Mapping[str, Verdict]] = field(default_factory=dict)

    def add(self, job: str, verdicts: Mapping[str, Verdict]) -> None:
        self.jobs[job] = dict(verdicts)

    @property
    def totals(self) -> Counter:
        return Counter(verdict for verdicts in self.jobs.values() for verdict in verdicts.values())

    def summary(self, combinations: int, stages: int) -> str:
        """One line: stage runs ran vs reused, against the C x S a sweep without reuse runs."""
        totals = self.totals
        reused = totals["cached"] + totals["skipped"]
        return (
            f"stage runs: {totals['ran']} ran, {reused} reused ({totals['cached']} restored from "
            f"DVC's run-cache, {totals['skipped']} unchanged); without reuse {combinations} "
            f"combinations x {stages} stages = {combinations * stages} would have run"
        )
