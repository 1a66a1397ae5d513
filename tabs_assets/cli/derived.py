"""Config values derived from the data (highest precedence), known once the dataset is stored."""

from typing import Any

from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.config.models import resolve_batch_size
from tabs_assets.graph.nodes import entry_address
from tabs_assets.store.entries import Store

TRAINED_MODELS = ("classifier", "generative_model", "reference_density")


def derived_values(config: ExperimentConfig, store: Store) -> dict[str, Any] | None:
    """Input width, classes, training max point and batch sizes; None before the dataset."""
    from tabs_assets.science.datasets.prepared import PreparedDataset

    entry = store.lookup(*entry_address("dataset", config))
    if entry is None:
        return None
    data = PreparedDataset.load(entry.path)
    train_x, _ = data.split_arrays("train")
    values: dict[str, Any] = {
        "input_dim": data.input_dim,
        "n_classes": data.n_classes,
        "training_max_point": [round(float(v), 4) for v in train_x.max(0)],
    }
    for model in TRAINED_MODELS:
        batch_size = getattr(config, model).training.batch_size
        values[f"{model}.training.batch_size"] = resolve_batch_size(len(train_x), batch_size)
    return values
