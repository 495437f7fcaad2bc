"""Running DVC commands from a flow: the environment they need, their output line by line, and
what `dvc repro` says it did with a stage."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from pipeline.tracking import DEFAULT_TRACKING_URI

# How much of a failed command's output its error message quotes.
_TAIL_LINES = 40

# The DVC commands running now, each the leader of its own process group (DVC and the stage it
# runs), so that stopping the flow stops them too; none start once stopping has begun.
_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()
_stopping = threading.Event()

Verdict = Literal["ran", "cached", "skipped"]


class DvcCommandError(RuntimeError):
    """A DVC command exited with an error; the message quotes the end of its output."""


@dataclass(frozen=True)
class CommandResult:
    """How a DVC command ended, and the end of what it printed."""

    returncode: int
    lines: list[str]  # the last _TAIL_LINES lines of output

    @property
    def tail(self) -> str:
        return "\n".join(self.lines)


def absolute_tracking_uri(project: Path) -> str:
    """The MLflow store of `project` as an absolute URI.

    A stage finds the store relative to its working directory; a DVC experiment runs in a
    temporary copy of the project, where a relative store would be a new, throwaway one.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    relative_sqlite = uri.startswith("sqlite:///") and not uri.startswith("sqlite:////")
    if relative_sqlite:
        return f"sqlite:///{(project / uri.removeprefix('sqlite:///')).resolve()}"
    return uri


def command_environment(project: Path) -> dict[str, str]:
    """The environment of DVC and of the stages it starts: this interpreter's `python` and `dvc`
    first on PATH, no telemetry, and the project's MLflow store by absolute URI."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {
        **os.environ,
        "PATH": path,
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_TRACKING_URI": absolute_tracking_uri(project),
    }


def output_lines(stream: IO[bytes]) -> Iterator[str]:
    """Lines of a process's output; of a progress bar redrawn with carriage returns, only the
    state it was left in, so logs hold one line per bar instead of one per redraw."""
    for raw in stream:
        segments = [part for part in raw.rstrip(b"\r\n").split(b"\r") if part.strip()]
        if segments:
            yield segments[-1].decode("utf-8", errors="replace").rstrip()


def dvc_command(args: list[str]) -> list[str]:
    """`dvc <args>` with the DVC of this interpreter."""
    return [sys.executable, "-m", "dvc", *args]


def run_dvc(
    project: Path, args: list[str], echo: Callable[[str], None], env: Mapping[str, str]
) -> CommandResult:
    """Run `dvc <args>` in `project`, passing each output line (stderr included) to `echo`."""
    command = dvc_command(args)
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    with _running_lock:
        if _stopping.is_set():
            raise DvcCommandError(f"`dvc {' '.join(args)}` not started: the flow is stopping")
        process = subprocess.Popen(
            command,
            cwd=project,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: DVC and the stage it starts
        )
        _running.add(process)
    with process:
        try:
            assert process.stdout is not None
            for line in output_lines(process.stdout):
                tail.append(line)
                echo(line)
        finally:
            with _running_lock:
                _running.discard(process)
    return CommandResult(process.returncode, list(tail))


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:  # the whole group has exited already
        pass


def stop_dvc_commands(grace_seconds: float = 60.0) -> None:
    """Stop every DVC command this process runs, with the stage each one runs, and start no
    more: SIGINT to each process group (DVC releases its lock, the stage ends its MLflow run
    KILLED), then SIGKILL to any group still running after `grace_seconds`."""
    with _running_lock:
        _stopping.set()
        processes = list(_running)
    for process in processes:
        _signal_group(process, signal.SIGINT)
    deadline = time.monotonic() + grace_seconds
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()


def checked_dvc(
    project: Path, args: list[str], echo: Callable[[str], None], env: Mapping[str, str]
) -> CommandResult:
    """`run_dvc` that raises DvcCommandError, quoting the output's end, when DVC fails."""
    result = run_dvc(project, args, echo, env)
    if result.returncode != 0:
        raise DvcCommandError(
            f"`dvc {' '.join(args)}` in {project} exited with {result.returncode}:\n{result.tail}"
        )
    return result


def repro_verdict(stage: str, output: list[str]) -> Verdict:
    """What `dvc repro` did with `stage`, from DVC's own report of it: ran its command, restored
    its outputs from the run-cache, or found it unchanged."""
    name = re.escape(stage)
    patterns: list[tuple[Verdict, str]] = [
        ("ran", rf"^Running stage '{name}':"),
        ("cached", rf"^Stage '{name}' is cached - skipping run"),
        ("skipped", rf"^Stage '{name}' didn't change, skipping"),
    ]
    for verdict, pattern in patterns:
        if any(re.search(pattern, line) for line in output):
            return verdict
    raise DvcCommandError(f"`dvc repro` reported neither running, restoring nor skipping {stage!r}")


def reproduce_stage(
    project: Path, stage: str, echo: Callable[[str], None], env: Mapping[str, str]
) -> Verdict:
    """Bring one stage up to date with `dvc repro --single-item`, so DVC decides whether it
    reruns and keeps dvc.lock and its cache; returns what DVC did."""
    seen: list[str] = []

    def record(line: str) -> None:
        if line.startswith(("Running stage", "Stage ")):
            seen.append(line)
        echo(line)

    checked_dvc(project, ["repro", "--single-item", stage], record, env)
    return repro_verdict(stage, seen)
