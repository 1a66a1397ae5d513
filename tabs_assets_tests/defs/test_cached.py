"""Issue #2: configs -> partitions -> cached assets -> store, through real Dagster runs."""

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from dagster import DagsterInstance, build_sensor_context

from tabs_assets.cli.main import main
from tabs_assets.config.datasets import CakeOnSeaConfig
from tabs_assets.config.loading import resolve_config
from tabs_assets.defs.resources import StoreResource
from tabs_assets.defs.runs import materialize_partition
from tabs_assets.defs.sensors import experiments_sensor
from tabs_assets.graph import nodes as graph
from tabs_assets.registry.records import Registry
from tabs_assets.science.datasets.cake_on_sea import make_cake_on_sea
from tabs_assets.store.entries import Store
from tabs_assets_tests.conftest import REPO, materialization_metadata, run_python, write_config

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


def test_cake_on_sea_check_figure() -> None:
    data = make_cake_on_sea(CakeOnSeaConfig(seed=42, n_points=100_000, n_dims=2))
    assert len(data.labels) == 96_011
    assert np.bincount(data.labels).tolist() == [49_940, 42_112, 3_959]


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


def test_result_neutral_change_keeps_keys_and_code_version_bump_changes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = resolve_config([], {"name": "k"}).config
    neutral = resolve_config(
        [],
        {
            "name": "k",
            "description": "other words",
            "explanation.chunk_size": 7,
            "classifier.training.accelerator": "cpu",
            "classifier.training.progress_bar": True,
        },
    ).config
    changed = resolve_config([], {"name": "k", "classifier.hidden": [51, 50]}).config
    keys = {name: graph.store_key(name, base) for name in graph.NODES}
    assert keys == {name: graph.store_key(name, neutral) for name in graph.NODES}
    assert (
        resolve_config([], {"name": "k"}).partition_key
        == resolve_config([], {"name": "k", "explanation.chunk_size": 7}).partition_key
    )
    assert graph.store_key("dataset", changed) == keys["dataset"]
    assert graph.store_key("classifier", changed) != keys["classifier"]
    assert graph.store_key("counterfactual_paths", changed) != keys["counterfactual_paths"]
    bumped = dataclasses.replace(graph.NODES["dataset"], version=2)
    monkeypatch.setitem(graph.NODES, "dataset", bumped)
    assert graph.store_key("dataset", base) != keys["dataset"]
    assert graph.store_key("classifier", base) != keys["classifier"]  # downstream follows


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
    from tabs_assets.registry.registration import add_partitions, register_file

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
    with store.lock("dataset", dataset_key):  # hold the key until both processes wait on it
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


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name: bad\nclassifer:\n  hidden: [3]\n", "classifer: unknown key"),
        ("name: bad\nclassifier:\n  dropout: lots\n", "classifier.dropout"),
        (
            "name: bad\ndataset:\n  kind: tabular_file\n",
            "dataset.path: required value is missing",
        ),
    ],
)
def test_bad_configs_fail_before_any_compute_naming_the_path(
    project_env, content: str, expected: str
) -> None:
    path = project_env["experiments"] / "bad.yaml"
    path.write_text(content)
    result = CliRunner().invoke(main, ["register", str(path)])
    assert result.exit_code == 2
    assert expected in result.output
    assert Registry(project_env["store"]).config_keys() == []
    assert Store(project_env["store"]).entries() == []


def test_missing_values_are_reported_all_at_once(project_env) -> None:
    path = project_env["experiments"] / "bad.yaml"
    path.write_text("dataset:\n  kind: tabular_file\n")
    result = CliRunner().invoke(main, ["register", str(path)])
    for dotted in ("name", "dataset.path", "dataset.label_column"):
        assert f"{dotted}: required value is missing" in result.output


def test_unregistered_partition_is_a_clear_error(project_env) -> None:
    result = CliRunner().invoke(main, ["materialize", "nope-12345678"])
    assert result.exit_code == 2
    assert "'nope-12345678' is not registered" in result.output


KEYS_SCRIPT = """
from pathlib import Path
from tabs_assets.config.loading import resolve_config
from tabs_assets.config.study import expand_study
from tabs_assets.graph.nodes import NODES, store_key
resolved = resolve_config([Path('experiments/quickstart.yaml')], ['dataset.n_points=5000'])
print(resolved.partition_key, [store_key(n, resolved.config) for n in NODES])
"""


def test_partition_and_store_keys_are_stable_across_hash_seeds() -> None:
    outputs = {run_python(KEYS_SCRIPT, env={"PYTHONHASHSEED": seed}) for seed in ("0", "1", "4242")}
    assert len(outputs) == 1
    assert outputs.pop().startswith("quickstart-")


def test_importing_definitions_pulls_no_heavy_libraries() -> None:
    output = run_python(
        "import sys, tabs_assets.defs.definitions\n"
        "print(sorted(m for m in ('lightning', 'mlflow', 'torch') if m in sys.modules))"
    )
    assert output.strip() == "[]"


def test_dagster_definitions_validate_passes_for_the_workspace(project_env) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_sensor_registers_new_experiment_files(project_env) -> None:
    write_config(project_env["experiments"], "sensed", SMALL)
    instance = DagsterInstance.get()
    resources = {"store": StoreResource(root=str(project_env["store"]))}
    # StoreResource yields (its run-liveness hook), so Dagster requires the context to be
    # entered: resources initialised on enter, torn down on exit.
    with build_sensor_context(instance=instance, resources=resources) as context:
        result = experiments_sensor(context)
    [request] = result.dynamic_partitions_requests
    assert request.partitions_def_name == "configs"
    [key] = request.partition_keys
    assert key.startswith("sensed-")
    assert Registry(project_env["store"]).config_keys() == [key]
    with build_sensor_context(
        instance=instance, resources=resources, cursor=result.cursor
    ) as context:
        again = experiments_sensor(context)
    assert "no new or changed files" in str(again.skip_message)


def test_register_is_idempotent_and_show_config_names_sources(project_env) -> None:
    path = write_config(project_env["experiments"], "shown", SMALL)
    runner = CliRunner()
    first = runner.invoke(main, ["register", str(path)])
    second = runner.invoke(main, ["register", str(path)])
    assert first.exit_code == second.exit_code == 0
    assert first.output == second.output
    [key] = Registry(project_env["store"]).config_keys()
    assert DagsterInstance.get().get_dynamic_partitions("configs") == [key]
    shown = runner.invoke(main, ["show-config", str(path), "-o", "classifier.dropout=0.1"])
    lines = {line.split()[0]: line for line in shown.output.splitlines() if line[:1] != "#"}
    assert f"file: {path}" in lines["dataset.n_points"]
    assert "override (-o)" in lines["classifier.dropout"]
    assert "# default" in lines["classifier.hidden"]


def test_show_config_of_a_partition_key_keeps_its_sources_and_parses_overrides(
    project_env,
) -> None:
    """A registered config shows where each value came from at registration; -o is YAML."""
    path = write_config(project_env["experiments"], "keyed", SMALL)
    runner = CliRunner()
    assert runner.invoke(main, ["register", str(path)]).exit_code == 0
    [key] = Registry(project_env["store"]).config_keys()

    def shown(*overrides: str) -> tuple[str, dict[str, str]]:
        result = runner.invoke(main, ["show-config", key, *overrides])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        return lines[0], {line.split()[0]: line for line in lines if line[:1] != "#"}

    header, lines = shown()
    assert header == f"# partition key: {key}"
    assert lines["dataset.n_points"].split()[1:] == ["4000", "#", "file:", str(path)]
    assert lines["classifier.hidden"].endswith("# default")
    assert not any("override (-o)" in line for line in lines.values())

    header, lines = shown("-o", "classifier.hidden=[5]", "-o", "classifier.dropout=0.25")
    assert header != f"# partition key: {key}"  # another config
    assert lines["classifier.hidden"].split() == [
        "classifier.hidden",
        "[5]",
        "#",
        "override",
        "(-o)",
    ]
    assert lines["classifier.dropout"].split()[1:] == ["0.25", "#", "override", "(-o)"]
    assert lines["dataset.n_points"].endswith(f"# file: {path}")
