"""tabs_assets.tracking: a parent MLflow run per partition, a child run per asset that did work."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance
from mlflow.tracking import MlflowClient

import tabs_assets.tracking
from tabs_assets import settings
from tabs_assets.defs.runs import materialize_partition
from tabs_assets.store.entries import Store
from tabs_assets.tracking.session import TrackingSettings, ensure_experiment
from tabs_assets_tests.conftest import FAST_OVERRIDES, materialization_metadata

pytestmark = pytest.mark.integration

COMPUTED = {
    "dataset",
    "classifier",
    "reference_density",
    "counterfactual_paths",
    "explanation_metrics",
    "plots",
}


def _client(store: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")


def _runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("tabs_assets")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def test_graph_runs_are_tracked_and_cache_hits_add_nothing(register, project_env) -> None:
    key = register("tracked", FAST_OVERRIDES)
    first = materialize_partition(key)
    assert first.success
    meta = materialization_metadata(first)
    # The unregularized NICE equals the reference NICE: trained once, re-used.
    assert meta["generative_model"]["cache"] == "hit"
    assert meta["generative_model"]["store_key"] == meta["reference_density"]["store_key"]

    client = _client(project_env["store"])
    runs = _runs(client)
    [parent] = [r for r in runs if r.data.tags["tabs_assets.role"] == "partition"]
    assert parent.data.tags["tabs_assets.partition_key"] == key
    children = {r.data.tags["tabs_assets.asset"]: r for r in runs if r is not parent}
    assert set(children) == COMPUTED
    for name, run in children.items():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["tabs_assets.store_key"] == meta[name]["store_key"]
        assert run.data.tags["tabs_assets.dagster_run_id"] == first.run_id
        assert run.data.tags["tabs_assets.git_dirty"] in {"true", "false"}
        assert run.data.tags["tabs_assets.git_commit"]
        assert f"/runs/{run.info.run_id}?workflowType=" in meta[name]["mlflow_run"]

    classifier = children["classifier"]
    assert classifier.data.params["classifier.hidden"] == "[50, 50]"
    assert classifier.data.params["classifier.training.max_epochs"] == "3"
    history = client.get_metric_history(classifier.info.run_id, "train_loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert len(client.get_metric_history(classifier.info.run_id, "val_accuracy")) == 3
    assert 0 <= classifier.data.metrics["test_accuracy"] <= 1
    artifacts = {a.path for a in client.list_artifacts(classifier.info.run_id)}
    assert {"weights.safetensors", "config.yaml", "confusion_matrix.png"} <= artifacts
    metrics_run = children["explanation_metrics"]
    assert {"validity_rate", "time_per_step_ns", "l1_auc"} <= set(metrics_run.data.metrics)

    second = materialize_partition(key)
    again = materialization_metadata(second)
    assert {m["cache"] for m in again.values()} == {"hit"}
    assert len(_runs(client)) == len(runs)  # a cache hit creates no run
    assert again["classifier"]["mlflow_run"] == meta["classifier"]["mlflow_run"]


def test_unreachable_tracking_server_keeps_the_result(
    register, project_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    key = register("offline", {"dataset.n_points": 3000})
    result = materialize_partition(key, "dataset")
    assert result.success
    meta = materialization_metadata(result)["dataset"]
    assert "mlflow_error" in meta and "mlflow_run" not in meta
    Store(project_env["store"]).verify("dataset", meta["store_key"])
    logs = DagsterInstance.get().all_logs(result.run_id)
    assert any("MLflow tracking failed, result kept" in entry.user_message for entry in logs)


def _hold_lock(lock: Path) -> subprocess.Popen:
    code = (
        "import time\n"
        "from pathlib import Path\n"
        "from tabs_assets.locks import HeldLock\n"
        f"lock = HeldLock(Path({str(lock)!r}))\n"  # kept: a collected lock is released
        "lock.acquire(None, note={'by': 'test holder'})\n"
        "print('held', flush=True)\n"
        "time.sleep(300)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_held_mlflow_lock_times_out_and_the_entry_is_tracked_when_next_read(
    register, project_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(settings.MLFLOW_LOCK_TIMEOUT_ENV, "2")
    store_root = project_env["store"]
    key = register("locked", {"dataset.n_points": 3000})
    holder = _hold_lock(Path(str(store_root / "mlflow.db") + ".lock"))
    try:
        started = time.monotonic()
        result = materialize_partition(key, "dataset")
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert result.success
    assert elapsed < 60
    meta = materialization_metadata(result)["dataset"]
    assert "mlflow.db.lock" in meta["mlflow_error"] and "test holder" in meta["mlflow_error"]
    logs = DagsterInstance.get().all_logs(result.run_id)
    assert any("still held after 2 s" in (e.user_message or "") for e in logs)
    store = Store(store_root)
    entry = store.lookup("dataset", meta["store_key"])
    assert "mlflow_run_id" not in entry.manifest

    # A killed process left a RUNNING run for this entry: closed when the entry is next read.
    client = _client(store_root)
    experiment_id = ensure_experiment(client, TrackingSettings())
    stale = client.create_run(
        experiment_id, tags={"tabs_assets.store_key": entry.key, "tabs_assets.role": "asset"}
    )

    again = materialize_partition(key, "dataset")
    assert materialization_metadata(again)["dataset"]["cache"] == "hit"
    entry = store.lookup("dataset", entry.key)
    run = client.get_run(entry.manifest["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["tabs_assets.tracked_late"] == "true"
    assert run.data.tags["tabs_assets.store_key"] == entry.key
    assert client.get_run(stale.info.run_id).info.status == "KILLED"
    assert run.info.end_time - run.info.start_time >= entry.manifest["compute_seconds"] * 1000 - 2

    # A third read does nothing in MLflow (fast path).
    count = len(client.search_runs([experiment_id]))
    materialize_partition(key, "dataset")
    assert len(client.search_runs([experiment_id])) == count


def test_tracking_imports_no_dagster() -> None:
    """Tracking lies below the Dagster layer: all of it imports in a fresh process without it."""
    folder = Path(tabs_assets.tracking.__file__).parent
    modules = sorted(f"tabs_assets.tracking.{path.stem}" for path in folder.glob("*.py"))
    assert len(modules) > 2
    code = f"import sys\nfor name in {modules!r}: __import__(name)\nprint('dagster' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False", modules
