"""Issue 9 (the researcher's UIs) and the tracking parts of issue 12, against a real SQLite
MLflow store and a real Dagster instance."""

import hashlib
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance
from mlflow.tracking import MlflowClient

from tabs_assets.cli.main import main
from tabs_assets.defs.runs import materialize_partition
from tabs_assets.graph.nodes import entry_address
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import Store
from tabs_assets.tracking.session import (
    EXPERIMENT_KIND_TAG,
    LOCK_TIMEOUT_ENV,
    TrackingSettings,
    ensure_experiment,
)
from tabs_assets.tracking.tags import DAGSTER_ASSET_TAG, DAGSTER_RUN_TAG
from tabs_assets.ui import presentation
from tabs_assets_tests.conftest import FAST_OVERRIDES, materialization_metadata, write_config

pytestmark = pytest.mark.integration


def _client(store: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _latest(instance: DagsterInstance, asset: str, partition: str):
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    return records[0].asset_materialization if records else None


def test_two_configs_compare_in_mlflow_and_cached_results_show_in_dagster(
    register, project_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_root = project_env["store"]
    shift = register("shift", {**FAST_OVERRIDES, "description": "Latent Shift baseline"})
    assert materialize_partition(shift).success

    # A second config sharing dataset and models: registering it shows them as materialized.
    path = write_config(
        project_env["experiments"], "revise", {**FAST_OVERRIDES, "explainer.method": "revise"}
    )
    result = CliRunner().invoke(main, ["register", str(path)])
    assert result.exit_code == 0, result.output
    assert "shown as materialized in Dagster" in result.output
    [revise] = [k for k in Registry(store_root).config_keys() if k.startswith("revise-")]
    instance = DagsterInstance.get()
    config = Registry(store_root).config(revise)
    for asset in ("dataset", "classifier", "reference_density"):
        materialization = _latest(instance, asset, revise)
        assert materialization is not None, asset
        assert materialization.tags["dagster/data_version"] == entry_address(asset, config)[1]
        assert materialization.metadata["cache"].value == "hit (registered)"
    assert _latest(instance, "counterfactual_paths", revise) is None  # not in the store yet
    again = CliRunner().invoke(main, ["register", str(path)])  # idempotent: nothing new
    assert "shown as materialized" not in again.output

    assert materialize_partition(revise, "*explanation_metrics").success

    client = _client(store_root)
    experiment = client.get_experiment_by_name("tabs_assets")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    for method, key in (("latent_shift", shift), ("revise", revise)):
        [parent] = client.search_runs(
            [experiment.experiment_id],
            filter_string=(
                f"params.`explainer.method` = '{method}' and tags.`tabs_assets.role` = 'partition'"
            ),
        )
        assert parent.data.tags["tabs_assets.partition_key"] == key
        assert 0 <= parent.data.metrics["validity_rate"] <= 1
        assert "classifier_test_accuracy" in parent.data.metrics  # a cache hit for `revise`
        assert parent.data.params["dataset.n_points"] == "6000"
        n_train = Store(store_root).lookup(*entry_address("dataset", config)).manifest["report"]
        n_train = n_train["metrics"]["n_train"]
        assert parent.data.params["classifier.training.batch_size"] == str(math.ceil(n_train / 20))
        [dataset_input] = client.get_run(parent.info.run_id).inputs.dataset_inputs
        assert dataset_input.dataset.digest == entry_address("dataset", config)[1]
        assert parent.data.tags["mlflow.note.content"]
    [shift_parent] = client.search_runs(
        [experiment.experiment_id],
        f"tags.`tabs_assets.partition_key` = '{shift}' and tags.`tabs_assets.role` = 'partition'",
    )
    assert "Latent Shift baseline" in shift_parent.data.tags["mlflow.note.content"]

    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    for run in runs:
        tags = run.data.tags
        assert tags["mlflow.source.git.commit"]
        assert tags[DAGSTER_ASSET_TAG].startswith("http://127.0.0.1:3000/assets/")
        assert run.info.status == "FINISHED"
        if tags["tabs_assets.role"] == "asset":
            assert tags[DAGSTER_RUN_TAG].startswith("http://127.0.0.1:3000/runs/")
            seconds = run.data.metrics["compute_seconds"]
            assert run.info.end_time - run.info.start_time >= seconds * 1000 - 2

    # Every figure in MLflow is the store's full-size file, under its own path.
    [plots_run] = [r for r in runs if r.data.tags.get("tabs_assets.asset") == "plots"]
    entry = Store(store_root).lookup(*entry_address("plots", Registry(store_root).config(shift)))
    download = project_env["store"].parent / "download"
    download.mkdir()
    local = Path(client.download_artifacts(plots_run.info.run_id, "", str(download)))
    logged = {p.relative_to(local): p for p in local.rglob("*") if p.is_file()}
    figures = [p for p in logged if p.suffix in {".png", ".svg"}]
    assert figures and not any(p.parts[0] == "previews" for p in logged)
    for relative in figures:
        assert _sha256(logged[relative]) == _sha256(entry.path / relative), relative
    stored = {
        p.relative_to(entry.path)
        for p in entry.path.rglob("*.png")
        if p.relative_to(entry.path).parts[0] != "previews"
    }
    assert stored == {p for p in figures if p.suffix == ".png"}

    # Dagster metadata: words, rounded metrics, small previews, today's MLflow URL.
    monkeypatch.setenv(presentation.MLFLOW_UI_ENV, "http://mlflow.example:8080")
    rerun = materialize_partition(shift)
    meta = materialization_metadata(rerun)
    assert {m["cache"] for m in meta.values()} == {"hit"}
    assert meta["plots"]["mlflow_run"].startswith("http://mlflow.example:8080/#/experiments/")
    assert meta["explanation_metrics"]["config.explainer"].startswith("latent_shift")
    assert meta["explanation_metrics"]["config.description"] == "Latent Shift baseline"
    lof = meta["explanation_metrics"]["lof_auc"]
    assert lof == float(f"{lof:.4g}")
    assert "meaning" in meta["explanation_metrics"]["metrics (meaning, unit)"]
    events = rerun.get_asset_materialization_events()
    sizes = {
        e.materialization.asset_key.path[-1]: presentation.metadata_size(e.materialization.metadata)
        for e in events
    }
    assert max(sizes.values()) < 80_000, sizes


def _hold_lock(lock: Path) -> subprocess.Popen:
    code = (
        "import os, sys, time\n"
        "from filelock import FileLock\n"
        f"lock = FileLock({str(lock)!r})\n"
        "lock.acquire()\n"
        f"open({str(lock) + '.holder'!r}, 'w').write(f'pid {{os.getpid()}} (test holder)')\n"
        "print('held', flush=True)\n"
        "time.sleep(300)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_held_mlflow_lock_times_out_and_the_entry_is_tracked_when_next_read(
    register, project_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "2")
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


def test_training_progress_says_epoch_k_of_max_and_time() -> None:
    from tabs_assets.defs.assets.models import epoch_logger

    lines: list[str] = []

    class Log:
        def info(self, message: str) -> None:
            lines.append(message)

        def warning(self, message: str) -> None:
            lines.append(message)

    epoch_logger(Log(), "classifier", 200)({"epoch": 0, "train_loss": 0.941912345})
    assert lines[0].startswith("classifier epoch 1 of 200 (")
    assert "s so far): train_loss=0.9419" in lines[0]


def test_sensor_skips_the_example_studies_unless_asked(
    project_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import build_sensor_context

    from tabs_assets.defs.resources import StoreResource
    from tabs_assets.defs.sensors import SENSOR_STUDIES_ENV, experiments_sensor

    examples = project_env["experiments"] / "studies"
    examples.mkdir()
    write_config(project_env["experiments"], "mine", {"dataset.n_points": 3000})
    write_config(examples, "shipped", {"dataset.n_points": 3000})
    instance = DagsterInstance.get()
    resources = {"store": StoreResource(root=str(project_env["store"]))}
    with build_sensor_context(instance=instance, resources=resources) as context:
        result = experiments_sensor(context)
    [request] = result.dynamic_partitions_requests
    assert [k.split("-")[0] for k in request.partition_keys] == ["mine"]
    monkeypatch.setenv(SENSOR_STUDIES_ENV, "1")
    with build_sensor_context(
        instance=instance, resources=resources, cursor=result.cursor
    ) as context:
        more = experiments_sensor(context)
    [request] = more.dynamic_partitions_requests
    assert [k.split("-")[0] for k in request.partition_keys] == ["shipped"]
