"""No fault loses a result or blocks a run: broken registry records, gc's boundaries, store
permissions, lock timeouts, and a killed run's training-pool slot (issue 12)."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tabs_assets.cli.main import main
from tabs_assets.graph.nodes import entry_address, study_store_key
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import LockTimeoutError, Store
from tabs_assets_tests.conftest import FAST_OVERRIDES, REPO, text_payload


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _broken_records(store_root: Path) -> None:
    """As an older version could leave them: a tabular_file config whose file is gone, and
    a garbage JSON file."""
    configs = store_root / "registry" / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    record = {
        "partition_key": "gone-00000000",
        "source": str(store_root / "gone.yaml"),
        "config": {
            "name": "gone",
            "dataset": {
                "kind": "tabular_file",
                "path": "/nonexistent/data.csv",
                "label_column": "y",
            },
        },
        "sources": {},
    }
    (configs / "gone-00000000.json").write_text(json.dumps(record))
    (configs / "junk-11111111.json").write_text("{not json")


def test_broken_records_do_not_stop_list_gc_or_unregister(
    project_env: dict[str, Path], register: Callable[..., str]
) -> None:
    key = register("good", {"dataset.kind": "sklearn", "dataset.name": "iris"})
    store = Store(project_env["store"])
    config = Registry(project_env["store"]).config(key)
    kept = store.write(*entry_address("dataset", config), text_payload("used"), {}, {})
    made_by_broken = store.write(
        "dataset", "b" * 16, text_payload("x"), {}, {"partition_key": "gone-00000000"}
    )
    orphan = store.write("dataset", "c" * 16, text_payload("y"), {}, {"partition_key": "old-1"})
    _broken_records(project_env["store"])

    listed = _cli("list")
    assert listed.exit_code == 0 and key in listed.output
    assert "gone-00000000" in listed.output and "junk-11111111" in listed.output  # reported
    assert "Traceback" not in listed.output

    gc = _cli("store", "gc")
    assert gc.exit_code == 0, gc.output
    assert f"removed {orphan.path}" in gc.output and "no registered config" in gc.output
    assert kept.path.is_dir() and not orphan.path.exists()
    assert made_by_broken.path.is_dir()  # its record is broken: its keys are unknown, kept
    assert "whose registry record is broken" in gc.output

    out = _cli("unregister", "gone-00000000", "junk-11111111")
    assert out.exit_code == 0, out.output
    assert Registry(project_env["store"]).config_keys() == [key]
    assert made_by_broken.path.is_dir()  # unregister never removes store entries
    assert "broken" not in _cli("list").output


def test_missing_dagster_partition_is_added_with_a_message(
    project_env: dict[str, Path], register: Callable[..., str]
) -> None:
    from dagster import DagsterInstance

    from tabs_assets.defs.partitions import config_partitions

    key = register("lost", {"dataset.kind": "sklearn", "dataset.name": "iris"})
    instance = DagsterInstance.get()
    instance.delete_dynamic_partition(config_partitions.name, key)
    result = _cli("materialize", key, "--select", "dataset")
    assert result.exit_code == 0, result.output
    assert "was missing from the Dagster instance" in result.output
    assert instance.has_dynamic_partition(config_partitions.name, key)


def test_gc_keeps_a_registered_studys_entries(project_env: dict[str, Path]) -> None:
    """A study record and its members written as `register` writes them, with crafted entries."""
    from tabs_assets.config.study import expand_study
    from tabs_assets.registry.registration import add_partitions, register_file

    study_file = project_env["experiments"] / "s.yaml"
    study_file.write_text(
        "study:\n  name: s\n  base: []\n"
        "  set: {dataset.kind: sklearn, dataset.name: iris}\n"
        "  sweep: {explainer.n_steps: [5, 9]}\n"
        "  report: {rows: [dataset], columns: [explainer], metrics: [validity_rate]}\n"
    )
    registry = Registry(project_env["store"])
    from dagster import DagsterInstance

    registered = register_file(registry, study_file)
    add_partitions(DagsterInstance.get(), registered)
    study_key = registered.studies[0]
    record = registry.study(study_key)
    members = record.member_configs(registry)
    store = Store(project_env["store"])
    study_entries = [
        store.write(
            asset,
            study_store_key(asset, record.study, members),
            text_payload(asset),
            {},
            {"partition_key": study_key},
        )
        for asset in ("study_table", "study_report")
    ]
    member_entry = store.write(
        *entry_address("explanation_metrics", next(iter(members.values()))),
        text_payload("m"),
        {},
        {},
    )
    stale = store.write(
        "study_table", "d" * 16, text_payload("old"), {}, {"partition_key": study_key}
    )
    assert expand_study(study_file).partition_key == study_key

    dry = _cli("store", "gc", "--dry-run")
    assert dry.exit_code == 0 and f"would remove {stale.path}" in dry.output
    result = _cli("store", "gc")
    assert result.exit_code == 0, result.output
    assert all(entry.path.is_dir() for entry in [*study_entries, member_entry])
    assert not stale.path.exists()

    # Unregistering the study takes its members too (no other user), never store entries.
    out = _cli("unregister", str(study_file))
    assert out.exit_code == 0, out.output
    assert registry.study_keys() == [] and registry.config_keys() == []
    assert all(entry.path.is_dir() for entry in study_entries)
    assert not DagsterInstance.get().has_dynamic_partition("studies", study_key)


def test_gc_never_follows_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "k1").mkdir(parents=True)
    (outside / "k1" / "manifest.json").write_text(json.dumps({"files": {}}))
    (outside / "precious.txt").write_text("keep me")
    root = tmp_path / "store"
    store = Store(root)
    store.write("thing", "drop", text_payload("b"), {}, {})
    (root / "linked_asset").symlink_to(outside, target_is_directory=True)
    (root / "thing" / "linked_entry").symlink_to(outside / "k1", target_is_directory=True)
    plan = store.gc_plan(set(), {"thing", "linked_asset"}, min_temp_age_s=0)
    assert [item.path.name for item in plan.remove] == ["drop"]
    assert {item.path.name for item in plan.skipped} == {"linked_asset", "linked_entry"}
    store.gc_apply(plan)
    assert (outside / "precious.txt").read_text() == "keep me" and (outside / "k1").is_dir()
    assert (root / "linked_asset").is_symlink() and (root / "thing" / "linked_entry").is_symlink()


def test_store_files_get_umask_permissions(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    def save(directory: Path) -> None:
        save_file({"w": torch.zeros(3)}, directory / "weights.safetensors")

    old = os.umask(0o022)
    try:
        entry = Store(tmp_path).write("model", "k1", save, {}, {})
    finally:
        os.umask(old)
    for path in [entry.path, *entry.path.rglob("*")]:
        expected = 0o755 if path.is_dir() else 0o644
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_read_only_or_full_store_gives_a_message_not_a_traceback(
    project_env: dict[str, Path], register: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tests may run as root (permissions ignored): the file system's refusals are faked."""
    import errno

    from tabs_assets.registry import records as registry_module
    from tabs_assets.store.entries import StoreError

    register("ro", {"dataset.kind": "sklearn", "dataset.name": "iris"})
    store = Store(project_env["store"])
    orphan = store.write("dataset", "e" * 16, text_payload("x"), {}, {})
    config_file = project_env["experiments"] / "other.yaml"
    config_file.write_text("name: other\ndataset: {kind: sklearn, name: wine}\n")

    def refuse(code: int) -> Callable[..., None]:
        def raiser(*args: Any, **kwargs: Any) -> None:
            raise OSError(code, os.strerror(code), str(args[0]) if args else "")

        return raiser

    monkeypatch.setattr(registry_module, "write_file_durably", refuse(errno.EROFS))
    result = CliRunner().invoke(main, ["register", str(config_file)])
    assert result.exit_code == 2, result.output
    assert "cannot write the registry: the file system is read-only" in result.output
    assert isinstance(result.exception, SystemExit)

    with monkeypatch.context() as patch:
        patch.setattr(os, "rename", refuse(errno.EROFS))
        gc = CliRunner().invoke(main, ["store", "gc"])
    assert gc.exit_code == 2 and "could not remove" in gc.output, gc.output
    assert "read-only" in gc.output and isinstance(gc.exception, SystemExit)
    assert orphan.path.is_dir()

    def full_disk(directory: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory / "w.bin"))

    with pytest.raises(StoreError, match="the disk is full"):
        store.write("dataset", "f" * 16, full_disk, {}, {})
    assert not list((project_env["store"] / "dataset").glob(".tmp-*"))


def test_lock_timeout_names_the_holder(tmp_path: Path) -> None:
    holder = """
import sys, time
from tabs_assets.store.entries import Store
with Store(sys.argv[1]).lock("thing", "k1", holder_info={"partition_key": "p-1"}):
    print("locked", flush=True)
    time.sleep(30)
"""
    process = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "locked"
        started = time.perf_counter()
        with (
            pytest.raises(LockTimeoutError) as caught,
            Store(tmp_path).lock("thing", "k1", timeout_s=0.5),
        ):
            pass
        assert time.perf_counter() - started < 5
        message = str(caught.value)
        assert f"pid {process.pid}" in message and "p-1" in message and "k1.lock" in message
    finally:
        process.kill()
        process.wait()


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


@pytest.mark.integration
def test_gc_removes_only_what_the_store_made(
    project_env: dict[str, Path], register: Callable[..., str]
) -> None:
    """MLflow's artifacts under the store root, raw downloads and a user's files survive gc;
    the entries of an unregistered config do not."""
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    from tabs_assets.defs.runs import materialize_partition

    root = project_env["store"]
    kept_key = register("kept", FAST_OVERRIDES)
    assert materialize_partition(kept_key, "*explanation_metrics").success
    gone_key = register("gone", {**FAST_OVERRIDES, "dataset.seed": 7})
    assert materialize_partition(gone_key, "dataset").success
    gone_dataset = Store(root).entry_path(
        *entry_address("dataset", Registry(root).config(gone_key))
    )
    assert gone_dataset.is_dir()
    assert _cli("unregister", gone_key).exit_code == 0

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tabs_assets")
    assert experiment.artifact_location.startswith((root / "mlflow-artifacts").as_uri())
    runs = client.search_runs([experiment.experiment_id])

    def artifact_files(run_id: str, folder: str | None = None) -> set[str]:
        found = set()
        for item in client.list_artifacts(run_id, folder):
            found |= artifact_files(run_id, item.path) if item.is_dir else {item.path}
        return found

    before = {run.info.run_id: artifact_files(run.info.run_id) for run in runs}
    assert sum(map(len, before.values())) > 10
    user_file = root / "notes.txt"
    user_file.write_text("mine")
    user_folder = root / "my_analysis"
    (user_folder / "deep").mkdir(parents=True)
    (user_folder / "deep" / "table.csv").write_text("a,b\n")
    raw_file = root / "raw" / "winequality-red.csv"
    raw_file.parent.mkdir()
    raw_file.write_text("fixed acidity;quality\n")
    stray = root / "dataset" / "not-a-key"
    stray.mkdir()
    old = time.time() - 7200  # older than gc's temporary-folder age: only ownership protects
    artifact_dirs = [p for p in (root / "mlflow-artifacts").rglob("*") if p.is_dir()]
    for path in (user_file, user_folder, raw_file.parent, stray, *artifact_dirs):
        os.utime(path, (old, old))

    dry = _cli("store", "gc", "--dry-run")
    assert dry.exit_code == 0, dry.output
    for path in (user_file, user_folder, raw_file.parent, root / "mlflow-artifacts", stray):
        assert f"kept {path}  (not the store's" in dry.output
    assert f"would remove {gone_dataset}" in dry.output
    gc = _cli("store", "gc")
    assert gc.exit_code == 0, gc.output
    assert "path(s) that are not the store's (--verbose lists them)" in gc.output

    assert not gone_dataset.exists()
    assert user_file.read_text() == "mine" and (user_folder / "deep" / "table.csv").is_file()
    assert raw_file.is_file() and stray.is_dir()
    assert {run.info.run_id: artifact_files(run.info.run_id) for run in runs} == before
    classifier = Store(root).lookup(*entry_address("classifier", Registry(root).config(kept_key)))
    [classifier_run] = [
        run for run in runs if run.data.tags.get("tabs_assets.store_key") == classifier.key
    ]
    downloaded = mlflow.artifacts.download_artifacts(
        run_id=classifier_run.info.run_id,
        artifact_path="confusion_matrix.png",
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
    )
    assert Path(downloaded).read_bytes() == (classifier.path / "confusion_matrix.png").read_bytes()


def test_unregister_and_liveness_delete_only_their_own_files(tmp_path: Path) -> None:
    from tabs_assets.defs.liveness import RUNS_DIR, free_dead_runs

    registry = Registry(tmp_path / "store")
    registry.configs_dir.mkdir(parents=True)
    outside = tmp_path / "store" / "notes.json"
    outside.write_text("{}")
    assert not registry.has("config", "../../notes") and not registry.remove(
        "config", "../../notes"
    )
    assert outside.is_file()

    class Instance:  # free_dead_runs must not even look at a file that is not a run's
        root_directory = str(tmp_path / "home")

    runs = tmp_path / "home" / RUNS_DIR
    runs.mkdir(parents=True)
    (runs / "my-notes.json").write_text("{}")
    (runs / "my-notes.lock").write_text("")
    (runs / "my-notes.lock.holder").write_text("{}")
    assert free_dead_runs(Instance()) == []
    assert all((runs / name).is_file() for name in ("my-notes.json", "my-notes.lock"))
