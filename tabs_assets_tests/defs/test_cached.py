"""tabs_assets.defs.cached: each result computed once, stored, and a cache hit does no work."""

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance

from tabs_assets.defs import checks
from tabs_assets.defs.runs import materialize_partition
from tabs_assets.graph import nodes as graph
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import Store
from tabs_assets_tests.conftest import FAST_OVERRIDES, REPO, materialization_metadata, write_config

SMALL = {"dataset.n_points": 4000}


@pytest.fixture
def count_dataset_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts real dataset computations (the asset imports the loader at call time)."""
    import tabs_assets.science.datasets.loading as loading

    calls: list[int] = []
    original = loading.load_tabular_data

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(loading, "load_tabular_data", counting)
    return calls


def test_second_materialization_is_a_cache_hit_doing_no_work(
    register, count_dataset_builds, project_env
) -> None:
    key = register("hit", SMALL)
    first = materialize_partition(key, "dataset")
    second = materialize_partition(key, "dataset")
    assert first.success and second.success
    assert materialization_metadata(first)["dataset"]["cache"] == "miss"
    meta = materialization_metadata(second)["dataset"]
    assert meta["cache"] == "hit"
    assert count_dataset_builds == [1]
    entry = Store(project_env["store"]).verify("dataset", meta["store_key"])
    assert entry.manifest["dagster_run_id"] == first.run_id  # the original, untouched
    # The store key is the Dagster data version.
    event = second.get_asset_materialization_events()[0]
    assert event.materialization.tags["dagster/data_version"] == meta["store_key"]


def test_configs_sharing_the_dataset_slice_share_one_entry(
    register, count_dataset_builds, project_env
) -> None:
    first = register("share_a", {**SMALL, "classifier.hidden": [10]})
    second = register("share_b", {**SMALL, "classifier.hidden": [20]})
    assert first != second
    materialize_partition(first, "dataset")
    result = materialize_partition(second, "dataset")
    assert materialization_metadata(result)["dataset"]["cache"] == "hit"
    assert count_dataset_builds == [1]
    assert len([e for e in Store(project_env["store"]).entries() if e.asset == "dataset"]) == 1


def test_corrupted_payload_is_detected_and_rebuilt(
    register, count_dataset_builds, project_env
) -> None:
    key = register("corrupt", SMALL)
    first = materialize_partition(key, "dataset")
    store_key = materialization_metadata(first)["dataset"]["store_key"]
    payload = Store(project_env["store"]).entry_path("dataset", store_key) / "arrays.safetensors"
    data = bytearray(payload.read_bytes())
    data[-10] ^= 0xFF
    payload.write_bytes(bytes(data))
    second = materialize_partition(key, "dataset")
    assert materialization_metadata(second)["dataset"]["cache"] == "miss"
    assert count_dataset_builds == [1, 1]
    Store(project_env["store"]).verify("dataset", store_key)  # valid again


def test_force_recomputes(register, count_dataset_builds) -> None:
    key = register("force", SMALL)
    materialize_partition(key, "dataset")
    result = materialize_partition(key, "dataset", force=["dataset"])
    assert materialization_metadata(result)["dataset"]["cache"] == "forced"
    assert count_dataset_builds == [1, 1]


def _dagster_materialize(key: str, home: Path, store: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "tabs_assets.defs.definitions",
            "--select",
            "dataset",
            "--partition",
            key,
        ],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(home), "TABS_ASSETS_STORE": str(store)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_two_processes_materializing_one_key_compute_it_once(project_env, tmp_path) -> None:
    from tabs_assets.defs.partitions import add_partitions
    from tabs_assets.registry.registration import register_file

    path = write_config(project_env["experiments"], "race", SMALL)
    registered = register_file(Registry(project_env["store"]), path)
    key = registered.configs[0]
    homes = [tmp_path / "home_a", tmp_path / "home_b"]
    for home in homes:  # two separate Dagster instances, one shared store
        home.mkdir()
        add_partitions(DagsterInstance.from_config(str(home)), registered)
    store = Store(project_env["store"])
    config = Registry(project_env["store"]).config(key)
    dataset_key = graph.store_key("dataset", config)
    with store.locks.hold("dataset", dataset_key):  # hold the key until both processes wait on it
        processes = [_dagster_materialize(key, home, project_env["store"]) for home in homes]
        outputs = ["", ""]
        deadline = time.time() + 120
        while time.time() < deadline and not all("waiting for another" in o for o in outputs):
            for index, process in enumerate(processes):
                line = process.stdout.readline()
                outputs[index] += line
            assert all(p.poll() is None for p in processes), outputs
    for index, process in enumerate(processes):
        rest, _ = process.communicate(timeout=120)
        outputs[index] += rest
        assert process.returncode == 0, outputs[index]
    statuses = sorted(
        "miss" if "cache miss" in out else "hit" if "computed meanwhile" in out else "?"
        for out in outputs
    )
    assert statuses == ["hit", "miss"], outputs
    assert len([e for e in store.entries() if e.asset == "dataset"]) == 1


def _evaluations(result: Any) -> dict[str, bool]:
    return {
        f"{e.asset_key.path[-1]}:{e.check_name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


def test_a_cache_hit_loads_no_input_draws_nothing_and_reports_stored_checks(
    register, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tabs_assets.defs.io_manager import StoredInput
    from tabs_assets.defs.runs import materialize_partition
    from tabs_assets.ui import previews

    key = register("hit_cost", FAST_OVERRIDES)
    assert materialize_partition(key).success
    calls: list[str] = []

    def counted(name: str, original: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return original(*args, **kwargs)

        return call

    monkeypatch.setattr(StoredInput, "load", counted("load", StoredInput.load))
    monkeypatch.setattr(checks, "_evaluate", counted("check", checks._evaluate))
    for name in ("thumbnail_png", "write_thumbnails"):
        monkeypatch.setattr(previews, name, counted(name, getattr(previews, name)))
    import matplotlib.figure

    monkeypatch.setattr(
        matplotlib.figure.Figure, "savefig", counted("savefig", matplotlib.figure.Figure.savefig)
    )
    again = materialize_partition(key)
    assert again.success
    assert {
        e.materialization.metadata["cache"].value for e in again.get_asset_materialization_events()
    } == {"hit"}
    assert calls == []  # no input loaded, no figure drawn or thumbnailed, no check re-evaluated
    assert _evaluations(again) == dict.fromkeys(
        {f"{spec.asset}:{spec.name}" for spec in checks.CHECKS}, True
    )
    previews = [
        e.materialization.metadata["previews"].value
        for e in again.get_asset_materialization_events()
        if "previews" in e.materialization.metadata
    ]
    assert len(previews) >= 3 and all("data:image/png;base64," in p for p in previews)
