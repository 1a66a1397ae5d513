"""tabs_assets.defs.liveness: a run that dies never blocks the next."""

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tabs_assets.graph.nodes import entry_address
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import Store
from tabs_assets_tests.conftest import FAST_OVERRIDES, REPO

# Long enough to be killed mid-training (~40 ms per epoch), short enough to be made again by
# the rerun that checks its MLflow run.
KILLED_MATERIALIZE_EPOCHS = 400


@pytest.mark.integration
def test_killed_run_does_not_block_the_next_training(
    project_env: dict[str, Path], register: Callable[..., str]
) -> None:
    """kill -9 of `tabs-assets materialize` while it trains (holding the training-pool slot):
    the next run starts training within seconds and succeeds; the killed run's entry, once a
    rerun makes it, has its finished MLflow run."""
    key = register(
        "killed",
        {
            **FAST_OVERRIDES,
            "classifier.training.max_epochs": KILLED_MATERIALIZE_EPOCHS,
            "classifier.training.patience": KILLED_MATERIALIZE_EPOCHS,
        },
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [str(REPO / ".venv" / "bin" / "tabs-assets"), "materialize", key]
    first = subprocess.Popen(
        [*command, "--select", "*classifier"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    launched = time.monotonic()
    deadline = launched + 60
    for line in first.stdout:
        if "epoch" in line.lower() or time.monotonic() > deadline:
            break
    assert first.poll() is None, "the first run ended before training"
    killed_after = time.monotonic() - launched
    first.send_signal(signal.SIGKILL)
    first.wait()
    from dagster import DagsterInstance

    from tabs_assets import settings

    claimed = DagsterInstance.get().event_log_storage.get_concurrency_info(settings.training_pool())
    assert [slot.step_key for slot in claimed.claimed_slots] == ["classifier"]  # held by the dead

    # The rerun trains the reference density (same pool, not downstream of the classifier) and
    # must not wait for the dead run's slot.
    started = time.monotonic()
    second = subprocess.run(
        [*command, "--select", "*reference_density"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert second.returncode == 0, second.stdout + second.stderr
    print(f"rerun after kill -9: {elapsed:.1f} s (first run killed after {killed_after:.1f} s)")
    assert "reference_density" in second.stdout and elapsed < 60
    assert "died; freed its pool slots" in second.stderr

    # The entry the killed run was making (its classifier), made by a rerun, is tracked.
    third = subprocess.run(
        [*command, "--select", "classifier"], capture_output=True, text=True, env=env, timeout=300
    )
    assert third.returncode == 0, third.stdout + third.stderr
    from mlflow.tracking import MlflowClient

    store_root = project_env["store"]
    _, classifier_key = entry_address("classifier", Registry(store_root).config(key))
    manifest = Store(store_root).verify("classifier", classifier_key).manifest
    client = MlflowClient(tracking_uri=f"sqlite:///{store_root}/mlflow.db")
    run = client.get_run(manifest["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["tabs_assets.store_key"] == classifier_key
