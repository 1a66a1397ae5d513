"""Real service processes for the integration tests: started on 127.0.0.1, always stopped.

Every service runs in its own session (process group), with its output in a log file that a
failing wait prints. Stopping sends SIGTERM to the group, waits, then SIGKILLs the group and
any descendant that left it (e.g. servers that daemonize their helpers). ``start_dagster`` and
``launch_and_wait`` serve the code location and run a job launched over GraphQL.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import requests
from dagster import DagsterEventType, DagsterInstance
from dagster_graphql import DagsterGraphQLClient

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # console scripts of this environment (dagster, celery, ...)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(extra: Mapping[str, str] | None = None, drop: Sequence[str] = ()) -> dict[str, str]:
    """This process's environment with the venv's scripts first on PATH (dagster-celery calls
    ``celery`` by name), plus ``extra``, minus ``drop``."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update(extra or {})
    for name in drop:
        env.pop(name, None)
    return env


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid``."""
    parents = _parents()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


class Service:
    """One started process (and its children), its log, and how to stop it."""

    def __init__(self, name: str, args: Sequence[str], env: Mapping[str, str], log_dir: Path):
        self.name = name
        self.args = list(args)
        self.log_path = log_dir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.args,
                cwd=REPO,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still running after {timeout:.0f} s; log tail:\n{self.log()[-4000:]}"
            ) from None

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left of it and below it."""
        family = {self.pid} | descendants(self.pid)
        if self.running():
            with suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in family):
            self.process.poll()  # reap our direct child
            time.sleep(0.2)
        family |= descendants(self.pid)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in family:
            if _alive(pid):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


class Services:
    """Services started in a test, stopped in reverse order when the block exits."""

    def __init__(self, stack: ExitStack, log_dir: Path, env: Mapping[str, str]):
        self._stack = stack
        self.log_dir = log_dir
        self.env = dict(env)
        self.started: list[Service] = []

    def start(
        self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> Service:
        service = Service(name, args, env or self.env, self.log_dir)
        self._stack.callback(service.stop)
        self.started.append(service)
        return service

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ---\n{s.log()[-3000:]}" for s in self.started)


@contextmanager
def services(log_dir: Path, env: Mapping[str, str]) -> Iterator[Services]:
    log_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        yield Services(stack, log_dir, env)


def wait_until(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    logs: Callable[[], str] = lambda: "",
    interval: float = 0.25,
) -> object:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` with logs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except Exception as error:  # a service that is still starting refuses connections
            result, last_error = None, error
        else:
            last_error = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}"
                + (f" (last error: {last_error!r})" if last_error else "")
                + f"\n{logs()}"
            )
        time.sleep(interval)


JOB = "config_graph"


LOCATION_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename } } } } }
"""


def _location_loaded(url: str) -> bool:
    response = requests.post(url, json={"query": LOCATION_QUERY}, timeout=10).json()
    entries = response["data"]["workspaceOrError"]["locationEntries"]
    return any(
        entry["loadStatus"] == "LOADED"
        and entry["locationOrLoadError"]["__typename"] != "PythonError"
        for entry in entries
    )


def start_dagster(stack: Services) -> DagsterGraphQLClient:
    """dagster-webserver (loopback, free port) and dagster-daemon; returns a GraphQL client
    once the code location is loaded."""
    port = free_port()
    workspace = str(REPO / "workspace.yaml")
    started = time.monotonic()
    stack.start(
        "webserver",
        [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", workspace],
    )
    stack.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace])
    wait_until(
        lambda: _location_loaded(f"http://127.0.0.1:{port}/graphql"),
        180,
        "dagster-webserver with the tabs_assets code location loaded",
        stack.logs,
        interval=0.5,
    )
    print(f"dagster-webserver: code location loaded {time.monotonic() - started:.1f} s after start")
    return DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)


def launch_and_wait(
    client: DagsterGraphQLClient, stack: Services, partition_key: str, job: str = JOB
) -> str:
    """Submit ``job`` (default: the config graph) for one partition; wait until it succeeded."""
    started = time.monotonic()
    run_id = client.submit_job_execution(job, tags={"dagster/partition": partition_key})

    def finished() -> Any:
        status = client.get_run_status(run_id)
        return status if status.value in ("SUCCESS", "FAILURE", "CANCELED") else None

    status = wait_until(finished, 360, f"run {run_id}", stack.logs, interval=1.0)
    instance = DagsterInstance.get()
    errors = [
        record.user_message
        for record in instance.all_logs(run_id)
        if record.dagster_event is not None and record.dagster_event.is_failure
    ]
    assert status.value == "SUCCESS", f"{errors}\n{stack.logs()}"
    print(f"GraphQL-launched run of {partition_key}: {time.monotonic() - started:.1f} s")
    # It went through the run queue; only the daemon launches queued runs.
    types = {
        record.dagster_event.event_type
        for record in instance.all_logs(run_id)
        if record.dagster_event is not None
    }
    assert {DagsterEventType.RUN_ENQUEUED, DagsterEventType.RUN_STARTING} <= types
    return run_id
