"""tabs_assets.defs.runs: runs started from the command line."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tabs_assets.cli.main import main


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


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
