"""The Slurm settings of a run: the deployment file < a partition's config < the run config."""

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabs_assets import settings
from tabs_assets.config.errors import ConfigError
from tabs_assets.config.slurm import (
    ResolvedSlurm,
    SlurmSettings,
    SlurmSettingsError,
    parse_layer,
    resolve,
)
from tabs_assets.config.yaml_files import read_yaml
from tabs_assets.defs.slurm.jobs import SlurmError
from tabs_assets.registry.records import Registry, UnknownPartitionError
from tabs_assets.store.entries import Store

DEPLOY_FILE = Path("deploy") / "slurm.yaml"


RUN_CONFIG_SOURCE = "the run config (execution.config)"


def deployment_layer() -> tuple[str, SlurmSettings]:
    """$TABS_ASSETS_SLURM_CONFIG, else deploy/slurm.yaml of the checkout (optional)."""
    default = settings.project_root() / DEPLOY_FILE
    path = settings.slurm_config_file(default)
    if path == default and not path.is_file():
        return "the built-in defaults", SlurmSettings()
    try:
        data = read_yaml(path)
    except ConfigError as error:
        raise SlurmSettingsError("; ".join(error.problems)) from None
    return str(path), parse_layer(data, str(path))


def partition_layer(registry: Registry, partition_key: str | None) -> tuple[str, SlurmSettings]:
    """The ``slurm:`` section of the run's config or study file."""
    if partition_key:
        try:
            return f"the slurm section of config {partition_key}", registry.config(
                partition_key
            ).slurm
        except UnknownPartitionError:
            pass
        try:
            return f"the slurm section of study {partition_key}", registry.study(
                partition_key
            ).study.slurm
        except UnknownPartitionError:
            pass
    return "no partition", SlurmSettings()


@dataclass(frozen=True)
class SlurmProblem:
    message: str


def run_settings(run_config: dict[str, Any], run: Any) -> ResolvedSlurm:
    """A run's settings from its three layers, once Slurm and the store are known to work."""
    launch = parse_layer(run_config, RUN_CONFIG_SOURCE)
    if shutil.which("sbatch") is None:
        raise SlurmError("sbatch is not on PATH: run Dagster where Slurm's commands are")
    Store(settings.store_root()).locks.check()
    registry = Registry(settings.store_root())
    partition = partition_layer(registry, run.tags.get("dagster/partition"))
    return resolve([deployment_layer(), partition, (RUN_CONFIG_SOURCE, launch)])
