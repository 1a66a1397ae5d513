"""Content hashes of user data files, for cache keys. Light on purpose: keys are computed on
every materialization, so this module imports neither pandas nor scikit-learn."""

import time
from pathlib import Path

from tabs_assets.config.datasets import DatasetConfig
from tabs_assets.config.hashing import file_sha256
from tabs_assets.science.datasets.tabular import DatasetError

# A file changed this recently may change again within one tick of its timestamps, unseen by
# (size, mtime): its hash is not remembered ("racy git"; tests, editors saving twice).
RACY_NS = 2_000_000_000
_MAX_REMEMBERED = 1024
_remembered: dict[tuple[str, int, int, int, int, int], str] = {}


def file_fingerprint(path: Path) -> str:
    """sha256 of the file's bytes: part of the cache key, so an edited file invalidates it.

    Hashed once per process and version of the file: the keys of one config's assets each
    include the dataset's key, so one ``plots`` key would otherwise read the file many times.
    A version is (path, device, inode, size, mtime_ns, ctime_ns), as git's index tells edits.
    """
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist (dataset.path)")
    stat = path.stat()
    version = (
        str(path.resolve()),
        stat.st_dev,
        stat.st_ino,
        stat.st_size,
        stat.st_mtime_ns,
        stat.st_ctime_ns,
    )
    digest = _remembered.get(version)
    if digest is None:
        digest = file_sha256(path)
        if time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) > RACY_NS:
            if len(_remembered) >= _MAX_REMEMBERED:
                _remembered.clear()
            _remembered[version] = digest
    return digest


def dataset_fingerprint(config: DatasetConfig) -> str | None:
    """Content hash of the data a config reads from a user file; None for other kinds."""
    return None if config.data_file is None else file_fingerprint(config.data_file)
