"""`finepseudo ui`: the Prefect server (flow and task runs of the pipeline) and the MLflow UI (the
project's store) on 127.0.0.1, until Ctrl-C stops both."""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline.tracking import artifact_root, tracking_uri

HOST = "127.0.0.1"
# Seconds a stopped server has to exit before it is killed.
_STOP_GRACE = 15


@dataclass(frozen=True)
class Service:
    """A server to start: its command, the address a browser opens, and a URL that answers
    once it is up."""

    name: str
    command: list[str]
    url: str
    health: str


def _is_server(store: str) -> bool:
    return store.startswith(("http://", "https://"))


def services(prefect_port: int, mlflow_port: int, store: str) -> list[Service]:
    """The Prefect server and the MLflow UI over the MLflow store `store`; the Prefect server
    alone when `store` is a tracking server (its UI is at its own address)."""
    artifacts = artifact_root(store)
    mlflow_command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        store,
        "--host",
        HOST,
        "--port",
        str(mlflow_port),
        "--workers",
        "1",
    ]
    if artifacts:
        mlflow_command += ["--artifacts-destination", artifacts]
    prefect_url = f"http://{HOST}:{prefect_port}"
    mlflow_url = f"http://{HOST}:{mlflow_port}"
    started = [
        Service(
            "Prefect",
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                HOST,
                "--port",
                str(prefect_port),
                "--analytics-off",
            ],
            prefect_url,
            f"{prefect_url}/api/health",
        ),
        Service("MLflow", mlflow_command, mlflow_url, f"{mlflow_url}/health"),
    ]
    return started[:1] if _is_server(store) else started


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen) -> None:
    """End the server and every process it started (it leads its own process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # a stop request (SIGTERM) ends both servers as Ctrl-C does


def _log_tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _wait_ready(started: dict[str, tuple[Service, subprocess.Popen, Path]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = dict(started)
    while waiting:
        for name, (service, process, log) in list(waiting.items()):
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {process.returncode} before it answered at "
                    f"{service.health}:\n{_log_tail(log)}"
                )
            if _answers(service.health):
                del waiting[name]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{', '.join(waiting)} did not answer within {timeout:.0f} s")
        time.sleep(0.5)


def serve(args: argparse.Namespace) -> int:
    """Start both servers, print their addresses, and stop both on Ctrl-C (or when one exits).

    The servers' own output goes to log files, quoted when one fails, so the terminal keeps
    the addresses readable.
    """
    store = tracking_uri()
    if _is_server(store) and not _answers(f"{store.rstrip('/')}/health"):
        raise ValueError(
            f"the MLflow tracking server {store} (MLFLOW_TRACKING_URI) does not answer"
        )
    chosen = services(args.prefect_port, args.mlflow_port, store)
    ports = [args.prefect_port, args.mlflow_port][: len(chosen)]
    busy = [f"{port}" for port in ports if not _port_free(port)]
    if busy:
        raise ValueError(
            f"port(s) {', '.join(busy)} on {HOST} are taken; "
            "choose others with --prefect-port and --mlflow-port"
        )
    env = {
        **os.environ,
        "DO_NOT_TRACK": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    started: dict[str, tuple[Service, subprocess.Popen, Path]] = {}
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    # A command started in the background of a non-interactive shell inherits SIGINT as
    # ignored, and Python then keeps it ignored: Ctrl-C or `kill -INT` must still stop both.
    previous_interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="finepseudo-ui-") as logs:
        try:
            for service in chosen:
                log = Path(logs) / f"{service.name.lower()}.log"
                with log.open("wb") as output:
                    # A session of its own: Ctrl-C reaches this command alone, which then
                    # stops each server with everything it started.
                    process = subprocess.Popen(
                        service.command,
                        env=env,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                started[service.name] = (service, process, log)
            _wait_ready(started, args.timeout)
            prefect = chosen[0]
            print(
                f"Prefect UI: {prefect.url}  (flows report with PREFECT_API_URL={prefect.url}/api)"
            )
            if len(chosen) > 1:
                print(f"MLflow UI:  {chosen[1].url}  (store {store})")
                print(f"Ctrl-C stops both (their logs: {logs}).", flush=True)
            else:
                print(f"MLflow UI:  {store}  (the tracking server's own; it keeps running)")
                print(f"Ctrl-C stops the Prefect server (its log: {logs}).", flush=True)
            while True:
                for name, (_, process, log) in started.items():
                    if process.poll() is not None:
                        raise RuntimeError(
                            f"{name} exited with code {process.returncode}:\n{_log_tail(log)}"
                        )
                time.sleep(1)
        except KeyboardInterrupt:
            print("stopping the Prefect and MLflow servers", flush=True)
            return 0
        except RuntimeError as error:
            print(f"finepseudo ui: {error}", file=sys.stderr)
            return 1
        finally:
            for _, process, _ in started.values():
                _stop(process)
            signal.signal(signal.SIGTERM, previous_handler)
            signal.signal(signal.SIGINT, previous_interrupt)
