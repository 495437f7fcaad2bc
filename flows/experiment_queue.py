"""DVC's experiment queue, driven through its command line.

Each queued experiment runs in its own temporary copy of the project, so runs never share a
workspace, and `dvc queue start --jobs N` runs N at once. A queued experiment is built from the
last commit plus the tracked changes of the workspace; the dvc.lock files are copied in too (often
not committed yet), so the experiment checks out the outputs of stages that are already
up to date instead of running them again. That matters most for `persist` outputs such as
data/frames, which DVC's run-cache never restores.
"""

import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from flows.dvc_command import DvcCommandError, checked_dvc, dvc_command, output_lines, run_dvc

FINAL_STATES = ("Success", "Failed")
STATES = ("Queued", "Running", *FINAL_STATES)
_WORKERS = re.compile(r"Worker status: (\d+) active, (\d+) idle")


@dataclass(frozen=True)
class QueueStatus:
    """What `dvc queue status` reports: each named experiment's state, and the workers."""

    states: dict[str, str]
    active_workers: int
    idle_workers: int

    @property
    def workers(self) -> int:
        return self.active_workers + self.idle_workers


def parse_queue_status(lines: list[str]) -> QueueStatus:
    """Read `dvc queue status` output: rows `<task> <name> <created...> <state>`, then a line
    `Worker status: A active, I idle`."""
    states: dict[str, str] = {}
    active = idle = 0
    for line in lines:
        workers = _WORKERS.search(line)
        if workers:
            active, idle = int(workers[1]), int(workers[2])
            continue
        fields = line.split()
        if len(fields) >= 4 and fields[-1] in STATES:
            states[fields[1]] = fields[-1]
    return QueueStatus(states, active, idle)


def queue_status(project: Path, env: Mapping[str, str]) -> QueueStatus:
    lines: list[str] = []
    checked_dvc(project, ["queue", "status"], lines.append, env)
    return parse_queue_status(lines)


def queue_experiment(
    project: Path,
    name: str,
    overrides: Mapping[str, object],
    echo: Callable[[str], None],
    env: Mapping[str, str],
) -> None:
    """Queue experiment `name`: the workspace with `overrides` set in params.yaml."""
    args = ["exp", "run", "--queue", "--name", name, "--copy-paths", "dvc.lock"]
    for lock in sorted(project.glob("*/dvc.lock")):  # synthetic/dvc.lock: the dataset's stage
        args += ["--copy-paths", lock.relative_to(project).as_posix()]
    for key, value in overrides.items():
        args += ["--set-param", f"{key}={value}"]
    checked_dvc(project, args, echo, env)


def start_workers(
    project: Path, jobs: int, echo: Callable[[str], None], env: Mapping[str, str]
) -> None:
    """Start queue workers (up to `jobs`); each runs one experiment at a time.

    Workers are processes of their own that keep the environment they start with: that is how
    the experiments' stages learn the absolute MLflow store in `env`. They also inherit the
    command's output, so it goes through a file: a pipe would stay open until they exit.
    """
    args = ["queue", "start", "--jobs", str(jobs)]
    with tempfile.TemporaryFile() as output:
        process = subprocess.run(
            dvc_command(args), cwd=project, env=dict(env), stdout=output, stderr=subprocess.STDOUT
        )
        output.seek(0)
        lines = list(output_lines(output))
    for line in lines:
        echo(line)
    if process.returncode != 0:
        tail = "\n".join(lines)
        raise DvcCommandError(
            f"`dvc {' '.join(args)}` in {project} exited with {process.returncode}:\n{tail}"
        )


def stop_workers(project: Path, echo: Callable[[str], None], env: Mapping[str, str]) -> None:
    """Ask idle workers to exit now rather than after their idle timeout."""
    checked_dvc(project, ["queue", "stop"], echo, env)


def follow_logs(
    project: Path, name: str, echo: Callable[[str], None], env: Mapping[str, str]
) -> bool:
    """Pass the output of a started experiment to `echo` until its process ends; False when
    DVC had no output to follow (yet)."""
    return run_dvc(project, ["queue", "logs", "--follow", name], echo, env).returncode == 0


def print_logs(
    project: Path, name: str, echo: Callable[[str], None], env: Mapping[str, str]
) -> None:
    """Pass the whole output of a finished experiment to `echo`."""
    run_dvc(project, ["queue", "logs", name], echo, env)
