"""One thin script per DVC stage: parse paths, load params once, call the library, log to MLflow."""

import atexit
import os
import sys
from collections.abc import Callable
from typing import NoReturn


def run_stage(main: Callable[[], None]) -> NoReturn:
    """Run a stage's `main`, then end the process without the interpreter's teardown.

    Tearing down torch, MLflow and SQLAlchemy module by module takes 1.5-2 s per process
    (docs/benchmarks.md), a second or two of every stage and of every stage run in a sweep,
    for nothing: by the time `main` returns, every output has been written under a temporary
    name and renamed, and the MLflow runs are ended. The atexit handlers still run (they end
    what libraries started: loggers, multiprocessing's temporary folders) and the standard
    streams are flushed. A stage that raises or exits ends the usual way, with its traceback
    and exit status.
    """
    main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
