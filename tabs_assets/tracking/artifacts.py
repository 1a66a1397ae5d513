"""What a run holds besides numbers: a store entry's files, and the data set it was computed
on as an MLflow dataset input."""

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.graph.nodes import entry_address
from tabs_assets.store.entries import MANIFEST
from tabs_assets.ui import describe, previews

# A store folder matches MLflow's local-artifact dataset source twice over; it says so on every
# run. Filtered by message, process-wide: catch_warnings is not safe on the tracking thread.
warnings.filterwarnings(
    "ignore",
    message="The specified dataset source can be interpreted in multiple ways",
    category=UserWarning,
)


def manifest_of(artifacts: Sequence[Path]) -> tuple[Path | None, dict[str, Any]]:
    """(entry folder, manifest) when the artifacts are a store entry's files."""
    for path in artifacts:
        if path.name == MANIFEST:
            try:
                return path.parent, json.loads(path.read_text())
            except (OSError, ValueError):
                return path.parent, {}
    return None, {}


def log_files(client: Any, run_id: str, files: Sequence[Path], folder: str = "") -> None:
    """A store entry's files as artifacts under their own paths (below ``folder``)."""
    entry_dir, _ = manifest_of(files)
    for path in files:
        relative = path.relative_to(entry_dir) if entry_dir else Path(path.name)
        if relative.parts and relative.parts[0] == previews.PREVIEW_DIR:
            continue  # Dagster's small copies; MLflow keeps the full-size figures
        target = Path(folder) / relative.parent
        client.log_artifact(run_id, str(path), artifact_path=str(target) if target.parts else None)


def log_dataset(client: Any, run_id: str, config: ExperimentConfig, store_root: Path) -> None:
    """The config's stored data set as the run's training dataset input (MLflow's data view)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    folder, key = entry_address("dataset", config)
    source = resolve_dataset_source(str(store_root / folder / key))
    name = describe.config_in_words(config)["dataset"].split(" (")[0]
    dataset = MetaDataset(source=source, name=name, digest=key)
    client.log_inputs(
        run_id,
        datasets=[
            DatasetInput(
                dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "train")]
            )
        ],
    )
