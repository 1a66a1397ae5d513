"""The dataset asset: load or generate, split once, fit normalisation on the training rows."""

from pathlib import Path
from typing import Any

from tabs_assets import settings
from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.defs.cached import config_asset
from tabs_assets.defs.compute import Computed, Inputs, RunLog
from tabs_assets.ui.markdown import markdown_table


def load_dataset(path: Path) -> Any:
    from tabs_assets.science.datasets.prepared import PreparedDataset

    return PreparedDataset.load(path)


@config_asset("dataset", group="data", loader=load_dataset, kinds={"numpy"})
def dataset(config: ExperimentConfig, inputs: Inputs, log: RunLog) -> Computed:
    from tabs_assets.science.datasets.loading import load_tabular_data
    from tabs_assets.science.datasets.prepared import SPLITS, prepare_dataset

    raw = load_tabular_data(config.dataset, settings.raw_data_dir())
    prepared = prepare_dataset(raw, config.dataset.split)
    counts = {split: prepared.class_counts(split) for split in SPLITS}
    rows = [
        [name, *(counts[split][index] for split in SPLITS)]
        for index, name in enumerate(prepared.class_names)
    ]
    return Computed(
        payload=prepared,
        metrics={
            "n_rows": len(prepared.labels),
            "n_features": prepared.input_dim,
            "n_classes": prepared.n_classes,
            **{f"n_{split}": len(prepared.split_indices[split]) for split in SPLITS},
        },
        tables={"class_counts": markdown_table(["class", *SPLITS], rows)},
    )
