"""tabs_assets.defs.sensors: the sensor that registers files in experiments/."""

import pytest
from dagster import DagsterInstance, build_sensor_context

from tabs_assets import settings
from tabs_assets.defs.resources import StoreResource
from tabs_assets.defs.sensors import experiments_sensor
from tabs_assets.registry.records import Registry
from tabs_assets_tests.conftest import write_config

SMALL = {"dataset.n_points": 4000}


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


def test_sensor_skips_the_example_studies_unless_asked(
    project_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import build_sensor_context

    from tabs_assets.defs.resources import StoreResource
    from tabs_assets.defs.sensors import experiments_sensor

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
    monkeypatch.setenv(settings.SENSOR_STUDIES_ENV, "1")
    with build_sensor_context(
        instance=instance, resources=resources, cursor=result.cursor
    ) as context:
        more = experiments_sensor(context)
    [request] = more.dynamic_partitions_requests
    assert [k.split("-")[0] for k in request.partition_keys] == ["shipped"]
