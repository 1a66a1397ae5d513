"""End to end: every shell command of the README's usage sections works as written.

Each ```bash block outside "Set up" and "Deployment" is split into commands, and each runs in a
fresh ``bash -c`` from the repository root with a clean environment (no venv on PATH, no
DAGSTER_HOME) behind the README's "every new terminal" line, which makes the root DAGSTER_HOME:
the root dagster.yaml is the instance file of every command. Only the folders are redirected
into tmp, by their documented overrides: the store (``TABS_ASSETS_STORE``; ``$PWD/.tabs_store``
in a command) and the instance's state (``TABS_ASSETS_DAGSTER_STATE``, else ``.dagster_home/``).
Placeholders like ``<study key>`` are filled from an earlier command's output. Servers
(``dagster dev``, ``dg dev``, ``mlflow ui``) run until they answer on a free port, then stop.
"""

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tabs_assets_tests.conftest import REPO
from tabs_assets_tests.services import free_port

README = REPO / "README.md"
SKIPPED_SECTIONS = {"Set up", "Deployment (beyond one machine)", "Slurm"}  # other machines
NEW_TERMINAL = "source .venv/bin/activate"
# Warnings the project's own use of Dagster APIs would cause (issue 12). Not other libraries'
# own (MLflow's server: StarletteDeprecationWarning) nor Dagster's SupersessionWarning for its
# `dagster dev` / `asset materialize` commands themselves (it recommends its `dg` CLI).
PROJECT_WARNINGS = re.compile(r"\b(Beta|Preview|Deprecation|Experimental)Warning")
# Placeholder -> how an earlier command's output gives its value.
PLACEHOLDERS = {"study key": re.compile(r"^study (\S+): \d+ members", re.MULTILINE)}
# What Dagster prints when the instance file in use is not the root dagster.yaml.
INSTANCE_FILE_WARNINGS = ("will not be used to configure Dagster", "No dagster instance config")
# Commands that start one run on the instance (checked to land in its state folder).
RUN_COMMANDS = ("dagster asset materialize", "dg launch")
# Long-running servers: started with a port of ours, checked to answer, stopped.
SERVERS = {
    "dagster dev": ("-p {port}", "/server_info"),
    "dg dev": ("-p {port}", "/server_info"),
    "mlflow ui": ("--port {port}", "/health"),
}


def readme_commands() -> list[tuple[str, str]]:
    """(section, command) for every command of a ```bash block outside the skipped sections;
    continuation lines joined, comment-only lines dropped."""
    commands, section, block = [], "", None
    for line in README.read_text().splitlines():
        if block is None and line.startswith("## "):
            section = line[3:].strip()
        elif block is None and line.strip() == "```bash":
            block = []
        elif block is not None and line.strip() == "```":
            if section not in SKIPPED_SECTIONS:
                joined = "\n".join(block).replace("\\\n", " ")
                commands += [
                    (section, command.strip())
                    for command in joined.splitlines()
                    if command.strip() and not command.strip().startswith("#")
                ]
            block = None
        elif block is not None:
            block.append(line)
    return commands


def test_readme_usage_sections_have_commands() -> None:
    commands = [command for _, command in readme_commands()]
    assert commands[0].startswith(NEW_TERMINAL)
    for start in (*RUN_COMMANDS, *SERVERS):
        assert any(command.startswith(start) for command in commands), start
    assert any(command.startswith("tabs-assets study show <study key>") for command in commands)


def _shell(command: str, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
    )


def _serve(command: str, env: dict[str, str], path: str, port: int) -> str:
    """Start a server, wait until it answers on ``port``, stop it; its output so far."""
    process = subprocess.Popen(
        ["bash", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env=env,
        start_new_session=True,
    )
    answered = False
    deadline = time.monotonic() + 90
    try:
        while process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):
                    answered = True
                    break
            except OSError:
                time.sleep(1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
    assert answered, f"{command}: no answer on port {port} (exit {process.returncode})\n{output}"
    return output


@pytest.mark.integration
def test_readme_commands_work_in_a_new_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, state = tmp_path / "store", tmp_path / "dagster_state"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "TABS_ASSETS_STORE": str(store),  # documented overrides: never the checkout's store
        "TABS_ASSETS_DAGSTER_STATE": str(state),  # nor its Dagster runs
        **_pythonpath(),
    }
    commands = readme_commands()
    [(_, prefix)] = [(s, c) for s, c in commands if c.startswith(NEW_TERMINAL)]
    assert prefix.endswith("export DAGSTER_HOME=$PWD"), prefix  # the root dagster.yaml

    # The set-up's last step (the venv exists): the quickstart registers and materializes.
    setup = _shell("export DAGSTER_HOME=$PWD && .venv/bin/tabs-assets quickstart", env, 600)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    [key] = re.findall(r"as partition (\S+);", setup.stdout)
    readme = README.read_text()
    assert f"--partition {key}" in readme, f"README's quickstart partition key is not {key}"

    values: dict[str, str] = {}
    timings = []
    for section, command in commands:
        if command.startswith(NEW_TERMINAL):
            continue
        for name, value in values.items():
            command = command.replace(f"<{name}>", value)
        assert not re.search(r"<[a-z ]+>", command.split("#")[0]), f"unfilled: {command}"
        command = command.replace("$PWD/.tabs_store", str(store))
        started = time.monotonic()
        server = next((s for s in SERVERS if command.startswith(s)), None)
        if server:
            option, path = SERVERS[server]
            port = free_port()
            words = command.split("#")[0].strip() + " " + option.format(port=port)
            output = _serve(f"{prefix} && {words}", env, path, port)
        else:
            runs_before = _runs(state)
            result = _shell(f"{prefix} && {command}", env, timeout=300)
            output = result.stdout + result.stderr
            assert result.returncode == 0, f"[{section}] {command}\n{output}"
            if command.startswith(RUN_COMMANDS):  # one more run, in the root instance's state
                runs = _runs(state)
                assert len(runs) == len(runs_before) + 1 and runs[-1][1] == "SUCCESS", runs
            if command.startswith("tabs-assets store show"):  # counts as integers
                assert "n_paths=" in output and not re.search(r"n_\w+=[\d.]+e\+", output)
            for name, pattern in PLACEHOLDERS.items():
                if match := pattern.search(result.stdout):
                    values[name] = match.group(1)
        assert "Traceback" not in output, f"[{section}] {command}\n{output}"
        for warning in INSTANCE_FILE_WARNINGS:  # the root dagster.yaml is the instance file
            assert warning not in output, f"[{section}] {command}\n{output}"
        warned = [line for line in output.splitlines() if PROJECT_WARNINGS.search(line)]
        assert not warned, f"[{section}] {command}\n" + "\n".join(warned)
        timings.append(f"{time.monotonic() - started:6.1f} s  {command[:90]}")
    print("\n".join(timings))
    assert values.get("study key"), "no command printed the study key"
    # Every run went to the instance of the root dagster.yaml, which keeps its state in one folder.
    from dagster import DagsterInstance

    from tabs_assets.defs.instance import StateDirInstance

    monkeypatch.setenv("TABS_ASSETS_DAGSTER_STATE", str(state))
    with DagsterInstance.from_config(str(REPO)) as instance:
        assert isinstance(instance, StateDirInstance)
        assert instance.root_directory == str(state)
        assert len(instance.get_runs()) == len(_runs(state)) >= 3


def _pythonpath() -> dict[str, str]:
    """The caller's PYTHONPATH, if any (a worktree sharing another checkout's venv)."""
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}


def _runs(state: Path) -> list[tuple[str, str]]:
    """(run id, status) of every run in the instance's SQLite run storage under ``state``."""
    with contextlib.closing(sqlite3.connect(state / "history" / "runs.db")) as db:
        return db.execute("SELECT run_id, status FROM runs ORDER BY id").fetchall()
