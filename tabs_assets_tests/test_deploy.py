"""deploy/: the deployment files fit this Dagster, each other and the schemas."""

import yaml

from tabs_assets.config.slurm import parse_layer
from tabs_assets_tests.conftest import REPO


def test_deploy_slurm_yaml_is_valid() -> None:
    settings = parse_layer(yaml.safe_load((REPO / "deploy" / "slurm.yaml").read_text()), "deploy")
    assert settings.training_gpus == 1 and settings.array_concurrency


def test_deployment_files_fit_this_dagster_and_each_other() -> None:
    """dagster.yaml and deploy/dagster-postgres.yaml pass Dagster's instance schema (no Postgres
    needed) with the same limits, and deploy/tabs-assets.env sets every variable the YAML reads."""
    import re

    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(REPO / "deploy"), "dagster-postgres.yaml")
    assert "postgres" in config["storage"]
    local, instance_class = dagster_instance_config(str(REPO), "dagster.yaml")
    assert instance_class is not None and instance_class.__name__ == "StateDirInstance"
    assert config["concurrency"] == local["concurrency"]
    assert config["run_monitoring"] == local["run_monitoring"]
    env_file = (REPO / "deploy" / "tabs-assets.env").read_text()
    defined = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", env_file, flags=re.MULTILINE))
    for name in ("dagster-postgres.yaml", "celery.yaml"):
        used = set(re.findall(r"env: (\w+)", (REPO / "deploy" / name).read_text()))
        assert used and used <= defined, (name, used - defined)
