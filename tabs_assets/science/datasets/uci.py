"""The three UCI data sets of SCIENCE.md §1.2: their raw files and parsers.

The raw files come from the checksummed download cache of ``downloads.py``: every raw file
lives in one cache directory (``raw_dir``). A file already present there is used as is, so on
an offline cluster put the pre-downloaded raw files there under exactly these names:

- ``covtype.data.gz``: forest cover type (gzip CSV, no header, 55 columns), from
  https://archive.ics.uci.edu/ml/machine-learning-databases/covtype/covtype.data.gz
- ``winequality-red.csv`` and ``winequality-white.csv``: wine quality (``;`` separated), from
  https://archive.ics.uci.edu/ml/machine-learning-databases/wine-quality/
- ``OnlineNewsPopularity.zip``: online news popularity (a zip holding one CSV), from
  https://archive.ics.uci.edu/ml/machine-learning-databases/00332/OnlineNewsPopularity.zip
"""

import contextlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from tabs_assets.config.datasets import ForestCoverConfig, OnlineNewsConfig, WineQualityConfig
from tabs_assets.science.datasets.downloads import fetch_raw_file
from tabs_assets.science.datasets.tabular import DatasetError, TabularData

UCI_BASE = "https://archive.ics.uci.edu/ml/machine-learning-databases"


@dataclass(frozen=True)
class RawFile:
    """A raw file of the cache: its name in raw_dir, its URL, and its sha256 where known."""

    name: str
    url: str
    # The real files cannot be fetched where this was written, so no digest is pinned yet;
    # the first download (or first use) records one in checksums.json instead.
    sha256: str | None = None


COVTYPE = RawFile("covtype.data.gz", f"{UCI_BASE}/covtype/covtype.data.gz")
WINE_RED = RawFile("winequality-red.csv", f"{UCI_BASE}/wine-quality/winequality-red.csv")
WINE_WHITE = RawFile("winequality-white.csv", f"{UCI_BASE}/wine-quality/winequality-white.csv")
ONLINE_NEWS = RawFile("OnlineNewsPopularity.zip", f"{UCI_BASE}/00332/OnlineNewsPopularity.zip")

COVTYPE_N_COLUMNS = 55
COVTYPE_FEATURES = [
    "elevation",
    "aspect",
    "slope",
    "horizontal_distance_to_hydrology",
    "vertical_distance_to_hydrology",
    "horizontal_distance_to_roadways",
    "hillshade_9am",
    "hillshade_noon",
    "hillshade_3pm",
    "horizontal_distance_to_fire_points",
]
COVTYPE_CLASSES = [
    "spruce/fir",
    "lodgepole pine",
    "ponderosa pine",
    "cottonwood/willow",
    "aspen",
    "douglas-fir",
    "krummholz",
]

WINE_FEATURES = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
]
WINE_LABEL = "quality"
WINE_CLASSES = ["quality<6", "quality=6", "quality>6"]

NEWS_LABEL = "shares"
NEWS_DROPPED_PREFIXES = ("data_channel_is_", "weekday_is_")
NEWS_DROPPED = ("url", "is_weekend")
NEWS_PERCENTILES = (0.0, 50.0, 75.0, 95.0, 100.0)
NEWS_CLASSES = ["shares p0-p50", "shares p50-p75", "shares p75-p95", "shares p95-p100"]
NEWS_N_FEATURES = 45


# --- download cache -------------------------------------------------------------------------


def _fetch(raw: RawFile, raw_dir: Path) -> Path:
    return fetch_raw_file(raw.name, raw.url, raw_dir, raw.sha256)


@contextlib.contextmanager
def _parsing(path: Path) -> Iterator[None]:
    """Turn a parse failure of a raw file into a DatasetError that says how to recover."""
    try:
        yield
    except DatasetError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, pd.errors.ParserError, ValueError) as error:
        raise DatasetError(
            f"cannot parse {path} ({error}); if it is truncated or not the UCI file, delete it "
            f"to download it again"
        ) from error


# --- shared helpers -------------------------------------------------------------------------


def _tabular(features: pd.DataFrame, labels: np.ndarray, class_names: list[str]) -> TabularData:
    return TabularData(
        features=features.to_numpy(dtype=np.float32),
        labels=np.asarray(labels, dtype=np.int64),
        feature_names=[str(name) for name in features.columns],
        class_names=class_names,
    )


def subsample_rows(data: TabularData, subsample: int | None, seed: int) -> TabularData:
    """Keep ``subsample`` rows, stratified by label, drawn from ``seed``; None keeps all.

    Asking for at least as many rows as there are keeps every row. Kept rows stay in file order.
    """
    if subsample is None or subsample >= len(data.labels):
        return data
    try:
        kept, _ = train_test_split(
            np.arange(len(data.labels)),
            train_size=subsample,
            random_state=seed,
            stratify=data.labels,
        )
    except ValueError as error:
        raise DatasetError(f"dataset.subsample={subsample}: cannot subsample: {error}") from error
    kept = np.sort(kept)
    return TabularData(
        features=data.features[kept],
        labels=data.labels[kept],
        feature_names=data.feature_names,
        class_names=data.class_names,
        extras=data.extras,
    )


# --- forest cover type ----------------------------------------------------------------------


def parse_forest_cover(path: Path) -> TabularData:
    """The 10 quantitative columns of covtype.data.gz; label = cover type − 1."""
    with _parsing(path):
        frame = pd.read_csv(path, header=None, compression="gzip")
    if frame.shape[1] != COVTYPE_N_COLUMNS:
        raise DatasetError(
            f"{path}: expected {COVTYPE_N_COLUMNS} columns, found {frame.shape[1]}; "
            f"delete it to download it again"
        )
    cover_type = frame.iloc[:, -1].to_numpy()
    if not np.isin(cover_type, np.arange(1, 8)).all():
        raise DatasetError(f"{path}: the last column (cover type) must lie in 1..7")
    features = frame.iloc[:, : len(COVTYPE_FEATURES)].set_axis(COVTYPE_FEATURES, axis=1)
    return _tabular(features, cover_type - 1, COVTYPE_CLASSES)


def load_forest_cover(config: ForestCoverConfig, raw_dir: Path) -> TabularData:
    """UCI covertype: 10 quantitative features, 7 classes (§1.2)."""
    data = parse_forest_cover(_fetch(COVTYPE, raw_dir))
    return subsample_rows(data, config.subsample, config.split.seed)


# --- wine quality ---------------------------------------------------------------------------


def _read_wine(path: Path) -> pd.DataFrame:
    with _parsing(path):
        frame = pd.read_csv(path, sep=";")
    missing = [name for name in [*WINE_FEATURES, WINE_LABEL] if name not in frame.columns]
    if missing:
        raise DatasetError(f"{path}: missing columns {missing}; delete it to download it again")
    return frame


def wine_quality_labels(quality: np.ndarray) -> np.ndarray:
    """quality < 6 → 0, = 6 → 1, > 6 → 2."""
    return np.select([quality < 6, quality == 6], [0, 1], default=2).astype(np.int64)


def parse_wine_quality(red_path: Path, white_path: Path) -> TabularData:
    """Red then white rows stacked; 11 physico-chemical features; quality binned to 3 classes."""
    frame = pd.concat([_read_wine(red_path), _read_wine(white_path)], ignore_index=True)
    labels = wine_quality_labels(frame[WINE_LABEL].to_numpy())
    return _tabular(frame[WINE_FEATURES], labels, WINE_CLASSES)


def load_wine_quality(config: WineQualityConfig, raw_dir: Path) -> TabularData:
    """UCI wine quality, red + white, 3 classes (§1.2)."""
    data = parse_wine_quality(_fetch(WINE_RED, raw_dir), _fetch(WINE_WHITE, raw_dir))
    return subsample_rows(data, config.subsample, config.split.seed)


# --- online news popularity -----------------------------------------------------------------


def _read_news(path: Path) -> pd.DataFrame:
    with _parsing(path), zipfile.ZipFile(path) as archive:
        members = [name for name in archive.namelist() if name.lower().endswith(".csv")]
        # macOS zips carry "__MACOSX/._name.csv" resource forks that are not the data.
        members = [name for name in members if not name.startswith("__MACOSX/")]
        if len(members) != 1:
            raise DatasetError(f"{path}: expected one CSV inside the zip, found {members}")
        with archive.open(members[0]) as handle:
            # The file separates fields with ", ": names and values carry a leading space.
            frame = pd.read_csv(handle, skipinitialspace=True)
    return frame.rename(columns=lambda name: str(name).strip())


def _is_dropped_news_column(name: str) -> bool:
    return name in NEWS_DROPPED or name.startswith(NEWS_DROPPED_PREFIXES)


def shares_labels(shares: np.ndarray) -> np.ndarray:
    """Bins at the 0/50/75/95/100th percentiles, right-closed, the minimum in class 0."""
    edges = np.percentile(shares, NEWS_PERCENTILES)
    return np.digitize(shares, edges[1:-1], right=True).astype(np.int64)


def parse_online_news(path: Path) -> TabularData:
    """45 features (url, data channels, weekdays, is_weekend dropped); shares → 4 classes."""
    frame = _read_news(path)
    if NEWS_LABEL not in frame.columns:
        raise DatasetError(f"{path}: no {NEWS_LABEL!r} column; delete it to download it again")
    kept = [
        name for name in frame.columns if name != NEWS_LABEL and not _is_dropped_news_column(name)
    ]
    if len(kept) != NEWS_N_FEATURES:
        raise DatasetError(
            f"{path}: expected {NEWS_N_FEATURES} feature columns, found {len(kept)}; "
            f"delete it to download it again"
        )
    with _parsing(path):
        features = frame[kept].astype(np.float64)
        labels = shares_labels(frame[NEWS_LABEL].to_numpy(dtype=np.float64))
    return _tabular(features, labels, NEWS_CLASSES)


def load_online_news(config: OnlineNewsConfig, raw_dir: Path) -> TabularData:
    """UCI online news popularity, 45 features, 4 classes (§1.2)."""
    data = parse_online_news(_fetch(ONLINE_NEWS, raw_dir))
    return subsample_rows(data, config.subsample, config.split.seed)
