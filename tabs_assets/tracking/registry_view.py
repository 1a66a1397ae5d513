"""What tracking reads about a partition from the registry and the store: its config, the
config as MLflow params (batch sizes as used), its study, the studies it belongs to."""

import json
from pathlib import Path
from typing import Any

from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.config.loading import flatten
from tabs_assets.config.models import resolve_batch_size
from tabs_assets.graph.nodes import entry_address
from tabs_assets.registry.records import Registry, StudyRecord
from tabs_assets.store.entries import MANIFEST


def config_of(store_root: Path, partition_key: str) -> ExperimentConfig | None:
    try:
        return Registry(store_root).config(partition_key)
    except Exception:  # a study partition, or a broken record: no config params
        return None


def config_record(store_root: Path, partition_key: str) -> dict[str, Any]:
    """The partition's registry record: its source and study labels."""
    return Registry(store_root).config_record(partition_key)


def study_of(store_root: Path, partition_key: str) -> StudyRecord | None:
    try:
        return Registry(store_root).study(partition_key)
    except Exception:  # not a study, or a broken record
        return None


def studies_with(store_root: Path, partition_key: str) -> list[str]:
    """Names of the studies that have the partition as a member."""
    registry = Registry(store_root)
    names = []
    for key in registry.study_keys():
        try:
            record = registry.study(key)
        except Exception:
            continue
        if partition_key in record.member_keys:
            names.append(record.study.name)
    return sorted(set(names))


def mlflow_params(
    values: dict[str, Any], config: ExperimentConfig | None, store_root: Path
) -> dict[str, str]:
    """Nested values as MLflow params: flattened, ``*.batch_size: None`` as the size training
    used (science.models.data; left out until the data set is stored: params cannot change)."""
    # Cut here: MLflow cuts each longer value with a warning, or refuses it if so configured.
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    n_train = _n_train(config, store_root) if config is not None else None
    params = {}
    for key, value in flatten(values).items():
        if key.endswith("batch_size") and value is None:
            if n_train is None:
                continue
            value = resolve_batch_size(n_train, None)
        params[key] = str(value)[:MAX_PARAM_VAL_LENGTH]
    return params


def _n_train(config: ExperimentConfig, store_root: Path) -> int | None:
    folder, key = entry_address("dataset", config)
    try:
        manifest = json.loads((store_root / folder / key / MANIFEST).read_text())
        return int(manifest["report"]["metrics"]["n_train"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
