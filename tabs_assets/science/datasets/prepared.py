"""Split once, normalise on the training rows only, store (SCIENCE.md §1.4)."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.model_selection import train_test_split

from tabs_assets.config.datasets import SplitConfig
from tabs_assets.science.datasets.tabular import DatasetError, TabularData

SplitName = Literal["train", "val", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "val", "test")
ARRAYS_FILE = "arrays.safetensors"
META_FILE = "dataset.json"


@dataclass(frozen=True)
class PreparedDataset:
    """Raw features + labels, the stored split, and train-fitted standardisation.

    Everything downstream works in normalised space: ``split_arrays`` returns normalised
    features. ``sample_weights`` are per-*sample* weights 1/count(class) on the training split.
    """

    features: np.ndarray
    labels: np.ndarray
    feature_names: list[str]
    class_names: list[str]
    split_indices: dict[str, np.ndarray]
    mean: np.ndarray
    std: np.ndarray
    sample_weights: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        return ((raw - self.mean) / self.std).astype(np.float32)

    def denormalise(self, normalised: np.ndarray) -> np.ndarray:
        return (normalised * self.std + self.mean).astype(np.float32)

    def split_arrays(self, split: SplitName) -> tuple[np.ndarray, np.ndarray]:
        """Normalised features and labels of one split."""
        index = self.split_indices[split]
        return self.normalise(self.features[index]), self.labels[index]

    def class_counts(self, split: SplitName) -> list[int]:
        counts = np.bincount(self.labels[self.split_indices[split]], minlength=self.n_classes)
        return counts.tolist()

    def save(self, directory: Path) -> None:
        arrays = {
            "features": self.features,
            "labels": self.labels,
            "mean": self.mean,
            "std": self.std,
            "sample_weights": self.sample_weights,
            **{f"split/{name}": self.split_indices[name] for name in SPLITS},
            **{f"extra/{name}": value for name, value in self.extras.items()},
        }
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, directory / ARRAYS_FILE)
        meta = {"feature_names": self.feature_names, "class_names": self.class_names}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> "PreparedDataset":
        arrays = load_file(directory / ARRAYS_FILE)
        meta = json.loads((directory / META_FILE).read_text())
        return cls(
            features=arrays["features"],
            labels=arrays["labels"],
            feature_names=meta["feature_names"],
            class_names=meta["class_names"],
            split_indices={name: arrays[f"split/{name}"] for name in SPLITS},
            mean=arrays["mean"],
            std=arrays["std"],
            sample_weights=arrays["sample_weights"],
            extras={
                k.removeprefix("extra/"): v for k, v in arrays.items() if k.startswith("extra/")
            },
        )


def split_indices(labels: np.ndarray, config: SplitConfig) -> dict[str, np.ndarray]:
    """Stratified (optionally) train/val/test indices from the split's own seed."""
    everything = np.arange(len(labels))
    stratify = labels if config.stratify else None
    try:
        rest, test = train_test_split(
            everything, test_size=config.test, random_state=config.seed, stratify=stratify
        )
        val_share = config.val / (config.train + config.val)
        train, val = train_test_split(
            rest,
            test_size=val_share,
            random_state=config.seed,
            stratify=labels[rest] if config.stratify else None,
        )
    except ValueError as error:
        raise DatasetError(f"dataset.split: cannot split {len(labels)} rows: {error}") from error
    parts = zip(SPLITS, (train, val, test), strict=True)
    return {name: np.sort(part).astype(np.int64) for name, part in parts}


def prepare_dataset(data: TabularData, config: SplitConfig) -> PreparedDataset:
    """Split, fit mean/std on the training rows (zero std -> 1), per-sample class weights."""
    if len(np.unique(data.labels)) < 2:
        raise DatasetError("the data set has a single class; a classifier needs at least two")
    indices = split_indices(data.labels, config)
    train_features = data.features[indices["train"]].astype(np.float64)
    mean = train_features.mean(axis=0)
    std = train_features.std(axis=0)
    std[std == 0] = 1.0
    train_labels = data.labels[indices["train"]]
    counts = np.bincount(train_labels, minlength=len(data.class_names)).astype(np.float64)
    return PreparedDataset(
        features=data.features,
        labels=data.labels,
        feature_names=list(data.feature_names),
        class_names=list(data.class_names),
        split_indices=indices,
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        sample_weights=(1.0 / counts[train_labels]).astype(np.float32),
        extras=dict(data.extras),
    )
