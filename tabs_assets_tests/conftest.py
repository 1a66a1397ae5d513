"""Shared fixtures (an isolated store root, Dagster home and MLflow DB per test) and helpers."""

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tabs_assets.config.loading import resolve_config
from tabs_assets.defs.partitions import add_partitions
from tabs_assets.registry.records import Registry
from tabs_assets.registry.registration import register_file
from tabs_assets.store.entries import Store

REPO = Path(__file__).resolve().parents[1]
# Small but real: full cake-on-sea pipeline in seconds.
FAST_OVERRIDES = {
    "dataset.n_points": 6000,
    "classifier.training.max_epochs": 3,
    "generative_model.training.max_epochs": 2,
    "reference_density.training.max_epochs": 2,
    "explainer.n_steps": 9,
    "explanation.max_points": 200,
    "metrics.lof_max_train_rows": 500,
}


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised MLflow SQLite DB, made once: migrations take seconds per new DB."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def project_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_template_db: Path
) -> dict[str, Path]:
    """Store (with a fresh MLflow DB), Dagster home and experiments folder under tmp_path."""
    paths = {
        "store": tmp_path / "store",
        "dagster_home": tmp_path / "dagster_home",
        "experiments": tmp_path / "experiments",
    }
    for path in paths.values():
        path.mkdir()
    shutil.copyfile(mlflow_template_db, paths["store"] / "mlflow.db")
    monkeypatch.setenv("TABS_ASSETS_STORE", str(paths["store"]))
    monkeypatch.setenv("DAGSTER_HOME", str(paths["dagster_home"]))
    monkeypatch.setenv("TABS_ASSETS_EXPERIMENTS", str(paths["experiments"]))
    return paths


def text_payload(text: str) -> Callable[[Path], None]:
    """A store payload writer: ``payload.txt`` holding ``text``."""

    def save(directory: Path) -> None:
        (directory / "payload.txt").write_text(text)

    return save


def write_config(directory: Path, name: str, overrides: dict[str, Any]) -> Path:
    """A config YAML file with dotted overrides applied to the defaults."""
    import yaml

    from tabs_assets.config.loading import set_dotted

    data: dict[str, Any] = {"name": name}
    for key, value in overrides.items():
        set_dotted(data, key, value)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def register(project_env: dict[str, Path]) -> Callable[..., str]:
    """Register a config (name + dotted overrides) in the test instance; returns its key."""
    from dagster import DagsterInstance

    def _register(name: str, overrides: dict[str, Any] | None = None) -> str:
        path = write_config(project_env["experiments"], name, overrides or {})
        registered = register_file(Registry(project_env["store"]), path)
        add_partitions(DagsterInstance.get(), registered)
        return registered.configs[0]

    return _register


def materialization_metadata(result: Any) -> dict[str, dict[str, Any]]:
    """asset name -> {metadata key: raw value} of a run's materializations."""
    found = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        found[materialization.asset_key.path[-1]] = {
            key: getattr(value, "value", value) for key, value in materialization.metadata.items()
        }
    return found


def run_python(code: str, env: dict[str, str] | None = None, timeout: int = 120) -> str:
    """Run ``code`` in a fresh interpreter; return stdout (fails the test on error)."""
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.fixture
def fast_config() -> Iterator[Any]:
    yield resolve_config([], {"name": "fast", **FAST_OVERRIDES}).config


def assert_store_is_valid(store: Store) -> None:
    for entry in store.entries():
        store.verify(entry.asset, entry.key)  # raises CorruptEntryError on any mismatch
