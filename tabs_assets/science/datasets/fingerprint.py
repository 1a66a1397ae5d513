"""Content hashes of user data files, for cache keys. Light on purpose: keys are computed on
every materialization, so this module imports neither pandas nor scikit-learn."""

from pathlib import Path

from tabs_assets.config.datasets import DatasetConfig, TabularFileConfig
from tabs_assets.config.hashing import file_sha256
from tabs_assets.science.datasets.tabular import DatasetError


def file_fingerprint(path: Path) -> str:
    """sha256 of the file's bytes: part of the cache key, so an edited file invalidates it."""
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist (dataset.path)")
    return file_sha256(path)


def dataset_fingerprint(config: DatasetConfig) -> str | None:
    """Content hash of the data a config reads from a user file; None for other kinds."""
    if isinstance(config, TabularFileConfig):
        return file_fingerprint(config.path)
    return None
