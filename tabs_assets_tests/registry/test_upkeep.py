"""tabs_assets.registry.upkeep: gc and unregister, also beside broken registry records."""

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tabs_assets.cli.main import main
from tabs_assets.graph.nodes import entry_address, study_store_key
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import Store
from tabs_assets_tests.conftest import FAST_OVERRIDES, text_payload


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


def test_gc_keeps_a_registered_studys_entries(project_env: dict[str, Path]) -> None:
    """A study record and its members written as `register` writes them, with crafted entries."""
    from tabs_assets.config.study import expand_study
    from tabs_assets.defs.partitions import add_partitions
    from tabs_assets.registry.registration import register_file

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
