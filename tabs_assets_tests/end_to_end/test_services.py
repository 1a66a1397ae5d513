"""End to end: the code location served by real Dagster and MLflow servers on 127.0.0.1.

`dagster-webserver` and `dagster-daemon` run from workspace.yaml with the repository's
dagster.yaml; a partition of the `config_graph` job is launched through Dagster's GraphQL Python
client, queued, dequeued by the daemon and run by the default run launcher. Its MLflow runs land
in the default SQLite store, or, with MLFLOW_TRACKING_URI in the servers' environment, in a
running `mlflow server` that also receives the artifacts over HTTP.
"""

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tabs_assets.tracking.tags import ROLE_PARTITION, TAG_PREFIX
from tabs_assets_tests.conftest import FAST_OVERRIDES, REPO
from tabs_assets_tests.services import (
    BIN,
    free_port,
    launch_and_wait,
    service_env,
    services,
    start_dagster,
    wait_until,
)

# dagster_graphql's client calls gql with arguments gql deprecates: not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Using variable_values and operation_name:DeprecationWarning"
)
# Config-graph assets that do work on a fresh store, so each has an MLflow run. (The default
# generative model is the reference NICE itself: trained once, then a cache hit with no run.)
TRACKED_ASSETS = {
    "dataset",
    "classifier",
    "reference_density",
    "counterfactual_paths",
    "explanation_metrics",
}


def tracked_runs(tracking_uri: str, partition_key: str, run_id: str) -> dict[str, Any]:
    """asset name (or "partition" for the parent) -> MLflow run of this Dagster run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("tabs_assets")
    assert experiment is not None, f"no tabs_assets experiment at {tracking_uri}"
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_PREFIX}partition_key` = '{partition_key}'",
    )
    found = {}
    for run in runs:
        tags = run.data.tags
        if tags.get(f"{TAG_PREFIX}role") == ROLE_PARTITION:
            found["partition"] = run
        elif tags.get(f"{TAG_PREFIX}dagster_run_id") == run_id:
            found[tags[f"{TAG_PREFIX}asset"]] = run
    return found


@pytest.fixture
def served_env(project_env: dict[str, Path], register, tmp_path: Path) -> Iterator[dict]:
    """The repository's dagster.yaml in the test's DAGSTER_HOME, a registered small config."""
    shutil.copyfile(REPO / "dagster.yaml", project_env["dagster_home"] / "dagster.yaml")
    key = register("served", FAST_OVERRIDES)
    yield {"key": key, "logs": tmp_path / "logs", **project_env}


@pytest.mark.integration
def test_webserver_and_daemon_run_a_partition_launched_over_graphql(served_env: dict) -> None:
    env = service_env({"TABS_ASSETS_EXECUTOR": "in_process"}, drop=["MLFLOW_TRACKING_URI"])
    with services(served_env["logs"], env) as stack:
        client = start_dagster(stack)
        run_id = launch_and_wait(client, stack, served_env["key"])
    # The default tracking store: SQLite in the store root.
    uri = f"sqlite:///{served_env['store'] / 'mlflow.db'}"
    runs = tracked_runs(uri, served_env["key"], run_id)
    assert "partition" in runs
    assert set(runs) >= TRACKED_ASSETS
    child = runs["classifier"]
    assert child.data.tags["mlflow.parentRunId"] == runs["partition"].info.run_id
    assert "test_accuracy" in child.data.metrics


@pytest.mark.integration
def test_mlflow_tracking_server_receives_runs_and_artifacts_over_http(
    served_env: dict, tmp_path: Path, mlflow_template_db: Path
) -> None:
    from mlflow.tracking import MlflowClient

    server_dir = tmp_path / "mlflow_server"
    server_dir.mkdir()
    shutil.copyfile(mlflow_template_db, server_dir / "mlflow.db")  # skips the migrations
    artifacts = server_dir / "artifacts"
    port = free_port()
    server_url = f"http://127.0.0.1:{port}"
    env = service_env({"TABS_ASSETS_EXECUTOR": "in_process", "MLFLOW_TRACKING_URI": server_url})
    with services(served_env["logs"], env) as stack:
        started = time.monotonic()
        stack.start(
            "mlflow_server",
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{server_dir / 'mlflow.db'}",
                "--artifacts-destination",
                str(artifacts),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        wait_until(
            lambda: requests.get(f"{server_url}/health", timeout=5).ok,
            180,
            "mlflow server",
            stack.logs,
            interval=0.5,
        )
        print(f"mlflow server: healthy {time.monotonic() - started:.1f} s after start")
        client = start_dagster(stack)
        run_id = launch_and_wait(client, stack, served_env["key"])

        runs = tracked_runs(server_url, served_env["key"], run_id)
        assert "partition" in runs
        assert set(runs) >= TRACKED_ASSETS
        mlflow = MlflowClient(tracking_uri=server_url)
        experiment = mlflow.get_experiment_by_name("tabs_assets")
        assert experiment.artifact_location.startswith("mlflow-artifacts:")  # proxied
        classifier = runs["classifier"].info.run_id
        listed = {item.path for item in mlflow.list_artifacts(classifier)}
        assert {"weights.safetensors", "model.json", "manifest.json"} <= listed
        assert "test_accuracy" in runs["classifier"].data.metrics
        # The files went through the server into its artifact destination ...
        stored = {p.name for p in artifacts.rglob("*") if p.is_file()}
        assert "weights.safetensors" in stored
    # ... and nothing was tracked in the default SQLite store.
    local = MlflowClient(tracking_uri=f"sqlite:///{served_env['store'] / 'mlflow.db'}")
    assert local.get_experiment_by_name("tabs_assets") is None
