"""A stage process ends without the interpreter's teardown once its work is done, yet keeps
what an ordinary exit gives: atexit handlers, flushed output, and a failing stage's traceback
and exit status."""

import subprocess
import sys
import textwrap

from project_imports import REPO


def run_script(body: str) -> subprocess.CompletedProcess:
    """Run `body` (which defines main) under run_stage in a fresh interpreter."""
    script = textwrap.dedent(body) + "\nfrom stages import run_stage\nrun_stage(main)\n"
    return subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_a_finished_stage_skips_teardown_but_flushes_and_runs_atexit(tmp_path):
    marker = tmp_path / "atexit.txt"
    done = run_script(
        f"""
        import atexit, pathlib

        class Torn:
            def __del__(self):
                print("torn down")

        kept = Torn()  # a module global: the interpreter's teardown would delete it

        def main():
            atexit.register(pathlib.Path({str(marker)!r}).write_text, "ran")
            print("written", end="")  # no newline: only a flush puts it out
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "written"
    assert marker.read_text() == "ran"


def test_a_failing_stage_keeps_its_traceback_and_exit_status():
    failed = run_script(
        """
        def main():
            raise ValueError("frames.parquet, row 3: no label")
        """
    )
    assert failed.returncode == 1
    assert "ValueError: frames.parquet, row 3: no label" in failed.stderr

    stopped = run_script(
        """
        def main():
            raise SystemExit(143)
        """
    )
    assert stopped.returncode == 143
