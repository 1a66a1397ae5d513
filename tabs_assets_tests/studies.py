"""Study files for tests: members that share their models, registered with Dagster."""

from pathlib import Path

import yaml
from dagster import DagsterInstance

from tabs_assets.defs.partitions import add_partitions
from tabs_assets.registry.records import Registry
from tabs_assets.registry.registration import register_file
from tabs_assets_tests.conftest import FAST_OVERRIDES, write_config


def study_file(directory: Path, name: str, seeds: list[int]) -> Path:
    """A study whose members share one classifier and flow (they differ in explanation seed)."""
    write_config(directory, "base", FAST_OVERRIDES)
    path = directory / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "study": {
                    "name": name,
                    "base": ["base.yaml"],
                    "seeds": {"keys": ["explanation.seed"], "values": seeds},
                    "report": {"rows": ["dataset"], "columns": ["explainer"]},
                }
            }
        )
    )
    return path


def register_study(project_env: dict[str, Path], path: Path) -> str:
    registered = register_file(Registry(project_env["store"]), path)
    add_partitions(DagsterInstance.get(), registered)
    return registered.studies[0]
