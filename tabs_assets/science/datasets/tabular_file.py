"""Your own CSV or Parquet file as a data set (SCIENCE.md §1.3).

Steps, in order: read the file (format from its suffix); drop rows with a value <= 0 in any
``positive_columns`` (as in the heart-failure pipeline); map labels to 0..C-1; one-hot encode the
``categorical_columns`` (sorted categories, columns named ``col=value``, in place of the column).
Labels (and categories) are compared as text, whole-number floats read as integers: a
``label_mapping`` key is ``"1"``, never ``"1.0"``.
Every problem is a DatasetError naming the file and the column.
"""

from collections.abc import Hashable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from tabs_assets.config.datasets import TabularFileConfig
from tabs_assets.science.datasets.tabular import DatasetError, TabularData

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


def _require_file(path: Path) -> None:
    if not path.exists():
        raise DatasetError(f"dataset file {path} does not exist (dataset.path)")
    if not path.is_file():
        raise DatasetError(f"dataset file {path} is not a regular file (dataset.path)")


def read_table(path: Path) -> pd.DataFrame:
    """CSV or Parquet, chosen by the file's suffix."""
    _require_file(path)
    name = path.name.lower()
    try:
        if name.endswith(CSV_SUFFIXES):
            return pd.read_csv(path)
        if name.endswith(PARQUET_SUFFIXES):
            return pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError, ImportError) as error:
        raise DatasetError(f"cannot read {path}: {error}") from error
    raise DatasetError(
        f"{path}: unknown file type; use one of {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
    )


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], path: Path, role: str) -> None:
    for column in columns:
        if column not in frame.columns:
            raise DatasetError(
                f"{path}: {role} column {column!r} not found; columns are {list(frame.columns)}"
            )


def _whole_numbers_as_int(values: pd.Series) -> pd.Series:
    """Whole-number floats as integers, so 1.0 and 1 both read '1'; other values unchanged.

    Call only on a column without missing values.
    """
    if pd.api.types.is_float_dtype(values) and (values % 1 == 0).all():
        return values.astype(np.int64)
    return values


def _sorted_unique(values: pd.Series) -> list[Hashable]:
    """Distinct values, numbers in numeric order; mixed types fall back to text order."""
    unique = list(pd.unique(values))
    try:
        return sorted(unique)
    except TypeError:
        return sorted(unique, key=str)


def drop_non_positive(frame: pd.DataFrame, columns: list[str], path: Path) -> pd.DataFrame:
    """Rows with a value <= 0 in any of ``columns`` dropped (NaN is left for later checks)."""
    keep = pd.Series(True, index=frame.index)
    for column in columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise DatasetError(f"{path}: positive column {column!r} is not numeric")
        keep &= ~(frame[column] <= 0)
    return frame.loc[keep].reset_index(drop=True)


def _mapped_class_names(mapping: dict[str, int], path: Path) -> list[str]:
    n_classes = max(mapping.values()) + 1
    if set(mapping.values()) != set(range(n_classes)):
        raise DatasetError(
            f"{path}: dataset.label_mapping must use every class index 0..{n_classes - 1} "
            f"(got {sorted(set(mapping.values()))})"
        )
    # Several raw labels may share a class: its name lists them all.
    return ["|".join(raw for raw, index in mapping.items() if index == i) for i in range(n_classes)]


def encode_labels(
    raw: pd.Series, mapping: dict[str, int] | None, path: Path
) -> tuple[np.ndarray, list[str]]:
    """int64 labels and class names; None mapping = sorted unique labels -> 0..C-1."""
    column = raw.name
    n_missing = int(raw.isna().sum())
    if n_missing:
        raise DatasetError(f"{path}: label column {column!r} has {n_missing} missing values")
    raw = _whole_numbers_as_int(raw)
    text = raw.astype(str)
    if mapping is None:
        class_names = [str(value) for value in _sorted_unique(raw)]
        mapping = {name: index for index, name in enumerate(class_names)}
    else:
        if not mapping:
            raise DatasetError(f"{path}: dataset.label_mapping is empty")
        class_names = _mapped_class_names(mapping, path)
        unknown = sorted(set(text) - set(mapping))
        if unknown:
            raise DatasetError(
                f"{path}: label column {column!r} has values {unknown[:10]} that are not in "
                f"dataset.label_mapping"
            )
    labels = text.map(mapping).to_numpy(dtype=np.int64)
    if len(np.unique(labels)) < 2:
        raise DatasetError(
            f"{path}: label column {column!r} has {len(np.unique(labels))} class(es) in "
            f"{len(labels)} rows; a classifier needs at least two"
        )
    return labels, class_names


def one_hot(values: pd.Series, path: Path) -> pd.DataFrame:
    """One 0/1 column per sorted category, named ``col=value``."""
    column = values.name
    if values.isna().any():
        raise DatasetError(
            f"{path}: categorical column {column!r} has {int(values.isna().sum())} missing values"
        )
    values = _whole_numbers_as_int(values)
    text = values.astype(str)
    categories = _sorted_unique(values)
    columns = {f"{column}={category}": text == str(category) for category in categories}
    return pd.DataFrame(columns).astype(np.float32)


def _numeric_feature(values: pd.Series, path: Path) -> pd.Series:
    column = values.name
    if not pd.api.types.is_numeric_dtype(values):
        raise DatasetError(
            f"{path}: feature column {column!r} is not numeric ({values.dtype}); declare it in "
            f"dataset.categorical_columns or leave it out of dataset.feature_columns"
        )
    numbers = values.astype(np.float64)
    n_bad = int((~np.isfinite(numbers)).sum())
    if n_bad:
        raise DatasetError(
            f"{path}: feature column {column!r} has {n_bad} missing or infinite values"
        )
    return numbers


def build_features(
    frame: pd.DataFrame, columns: list[str], categorical: set[str], path: Path
) -> pd.DataFrame:
    """Numeric columns as they are, each categorical column replaced in place by its one-hot."""
    parts = [
        one_hot(frame[column], path)
        if column in categorical
        else _numeric_feature(frame[column], path).to_frame()
        for column in columns
    ]
    return pd.concat(parts, axis=1)


def _feature_columns(frame: pd.DataFrame, config: TabularFileConfig) -> list[str]:
    if config.feature_columns is None:
        return [str(name) for name in frame.columns if name != config.label_column]
    if config.label_column in config.feature_columns:
        raise DatasetError(
            f"{config.path}: label column {config.label_column!r} is also listed as a feature"
        )
    return list(config.feature_columns)


def load_tabular_file(config: TabularFileConfig) -> TabularData:
    """The configured CSV/Parquet file as float32 features and int64 labels."""
    path = config.path
    frame = read_table(path)
    _require_columns(frame, [config.label_column], path, "label")
    features = _feature_columns(frame, config)
    _require_columns(frame, features, path, "feature")
    _require_columns(frame, config.positive_columns, path, "positive")
    _require_columns(frame, config.categorical_columns, path, "categorical")
    stray = [column for column in config.categorical_columns if column not in features]
    if stray:
        raise DatasetError(f"{path}: categorical columns {stray} are not feature columns")
    frame = drop_non_positive(frame, config.positive_columns, path)
    labels, class_names = encode_labels(frame[config.label_column], config.label_mapping, path)
    table = build_features(frame, features, set(config.categorical_columns), path)
    return TabularData(
        features=table.to_numpy(dtype=np.float32),
        labels=labels,
        feature_names=[str(name) for name in table.columns],
        class_names=class_names,
    )
