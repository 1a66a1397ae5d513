"""What ``register`` checks beyond the schema: the data file a config reads, and the resources
it implies. Every problem is a ``dotted.path: message`` line; nothing is written before this
passes.
"""

import math
import stat

from tabs_assets import settings
from tabs_assets.config.datasets import TabularFileConfig
from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.config.limits import resource_problems


def min_rows_per_class(config: TabularFileConfig) -> int:
    """Rows each class needs so that every split of a stratified split gets one."""
    split = config.split
    return max(2, math.ceil(1 / min(split.train, split.val, split.test) - 1e-9))


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a file")


def data_file_problems(
    config: TabularFileConfig,
) -> tuple[list[str], tuple[int, int, int] | None]:
    """Problems of a ``tabular_file`` data set, and its (rows, features, classes) when sound.

    Reads the file with the loader that materialization uses (one implementation).
    """
    import numpy as np

    from tabs_assets.science.datasets.tabular import DatasetError
    from tabs_assets.science.datasets.tabular_file import (
        CSV_SUFFIXES,
        PARQUET_SUFFIXES,
        load_tabular_file,
    )

    path = config.path.absolute()
    where = "dataset.path"
    try:  # the type from stat, never by opening: a FIFO's open blocks, a device never ends
        status = path.stat()
    except FileNotFoundError:
        return [f"{where}: {path} does not exist"], None
    except OSError as error:
        return [f"{where}: {path}: cannot read: {error.strerror}"], None
    if not stat.S_ISREG(status.st_mode):
        return [f"{where}: {path} is not a regular file ({_file_kind(status.st_mode)})"], None
    if not path.name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
        known = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
        return [f"{where}: {path} is not a known type; use one of {known}"], None
    size = status.st_size
    if size > settings.max_data_file_bytes():
        return [
            f"{where}: {path} has {size / 1e9:.3g} GB; the limit is "
            f"{settings.max_data_file_bytes() / 1e9:g} GB "
            f"(raise it with {settings.MAX_DATA_FILE_GB_ENV})"
        ], None
    try:
        data = load_tabular_file(config.model_copy(update={"path": path}))
    except DatasetError as error:
        message = str(error)
        return [f"{where}: {message if str(path) in message else f'{path}: {message}'}"], None
    except (OSError, ValueError, MemoryError, ImportError) as error:
        return [f"{where}: {path}: cannot read: {error}"], None
    counts = np.bincount(data.labels, minlength=len(data.class_names))
    needed = min_rows_per_class(config)
    few = {name: int(n) for name, n in zip(data.class_names, counts, strict=True) if n < needed}
    if few:
        return [
            f"dataset.label_column: {path}: classes with fewer than {needed} rows (each split "
            f"needs one): {few}"
        ], None
    rows, width = data.features.shape
    if width == 0:
        return [f"dataset.feature_columns: {path}: no feature columns"], None
    return [], (rows, width, len(data.class_names))


def admission_problems(
    config: ExperimentConfig,
    checked: dict[str, tuple[list[str], tuple[int, int, int] | None]] | None = None,
) -> list[str]:
    """Data-file and resource problems of a validated config.

    ``checked``: data-file results by data set, shared across calls (a study's members).
    """
    from tabs_assets.config.hashing import canonical_json

    shape = None
    if config.dataset.data_file is not None:
        checked = {} if checked is None else checked
        key = canonical_json(config.dataset)
        if key not in checked:
            checked[key] = data_file_problems(config.dataset)
        problems, shape = checked[key]
        if problems:
            return problems
    return resource_problems(config, shape)
