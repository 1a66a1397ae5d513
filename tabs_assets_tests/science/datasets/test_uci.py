"""tabs_assets.science.datasets.uci and .downloads: UCI loaders on small raw files, offline."""

import gzip
import hashlib
import io
import json
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tabs_assets.config.datasets import (
    ForestCoverConfig,
    OnlineNewsConfig,
    SplitConfig,
    WineQualityConfig,
)
from tabs_assets.science.datasets import uci
from tabs_assets.science.datasets.fingerprint import dataset_fingerprint
from tabs_assets.science.datasets.loading import load_tabular_data
from tabs_assets.science.datasets.tabular import DatasetError

NEWS_HEADER = [
    "url", "timedelta", "n_tokens_title", "n_tokens_content", "n_unique_tokens",
    "n_non_stop_words", "n_non_stop_unique_tokens", "num_hrefs", "num_self_hrefs", "num_imgs",
    "num_videos", "average_token_length", "num_keywords", "data_channel_is_lifestyle",
    "data_channel_is_entertainment", "data_channel_is_bus", "data_channel_is_socmed",
    "data_channel_is_tech", "data_channel_is_world", "kw_min_min", "kw_max_min", "kw_avg_min",
    "kw_min_max", "kw_max_max", "kw_avg_max", "kw_min_avg", "kw_max_avg", "kw_avg_avg",
    "self_reference_min_shares", "self_reference_max_shares", "self_reference_avg_sharess",
    "weekday_is_monday", "weekday_is_tuesday", "weekday_is_wednesday", "weekday_is_thursday",
    "weekday_is_friday", "weekday_is_saturday", "weekday_is_sunday", "is_weekend", "LDA_00",
    "LDA_01", "LDA_02", "LDA_03", "LDA_04", "global_subjectivity", "global_sentiment_polarity",
    "global_rate_positive_words", "global_rate_negative_words", "rate_positive_words",
    "rate_negative_words", "avg_positive_polarity", "min_positive_polarity",
    "max_positive_polarity", "avg_negative_polarity", "min_negative_polarity",
    "max_negative_polarity", "title_subjectivity", "title_sentiment_polarity",
    "abs_title_subjectivity", "abs_title_sentiment_polarity", "shares",
]  # fmt: skip
NEWS_DROPPED = {
    "url",
    "is_weekend",
    *(name for name in NEWS_HEADER if name.startswith(("data_channel_is_", "weekday_is_"))),
}
WINE_HEADER = [*uci.WINE_FEATURES, "quality"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every download attempt fails as offline; the list records the URLs asked for."""
    asked: list[str] = []

    def offline(url: str, timeout: float | None = None) -> None:
        asked.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return asked


def serve(monkeypatch: pytest.MonkeyPatch, payloads: dict[str, bytes]) -> list[str]:
    """Make urlopen answer each URL with its bytes; returns the URLs asked for."""
    asked: list[str] = []

    def online(url: str, timeout: float | None = None) -> io.BytesIO:
        asked.append(url)
        return io.BytesIO(payloads[url])

    monkeypatch.setattr(urllib.request, "urlopen", online)
    return asked


# --- raw-format writers ---------------------------------------------------------------------


def covtype_rows(cover_types: list[int]) -> np.ndarray:
    """55 integer columns: 10 quantitative, 4 wilderness, 40 soil, cover type."""
    n = len(cover_types)
    rows = np.zeros((n, 55), dtype=np.int64)
    rows[:, :10] = np.arange(n)[:, None] * 100 + np.arange(10)[None, :]
    rows[:, 10] = 1  # wilderness area 1
    rows[np.arange(n), 14 + np.arange(n) % 40] = 1  # one soil type per row
    rows[:, 54] = cover_types
    return rows


def write_covtype(raw_dir: Path, rows: np.ndarray) -> Path:
    raw_dir.mkdir(parents=True, exist_ok=True)
    text = "\n".join(",".join(str(value) for value in row) for row in rows) + "\n"
    path = raw_dir / "covtype.data.gz"
    path.write_bytes(gzip.compress(text.encode()))
    return path


def wine_csv(qualities: list[int], offset: float) -> bytes:
    header = ";".join(f'"{name}"' for name in WINE_HEADER)
    lines = [header]
    for row, quality in enumerate(qualities):
        values = [f"{offset + row + column / 100:.2f}" for column in range(11)]
        lines.append(";".join([*values, str(quality)]))
    return ("\n".join(lines) + "\n").encode()


def write_wine(raw_dir: Path, red: list[int], white: list[int]) -> None:
    raw_dir.mkdir(parents=True, exist_ok=True)
    (raw_dir / "winequality-red.csv").write_bytes(wine_csv(red, offset=1.0))
    (raw_dir / "winequality-white.csv").write_bytes(wine_csv(white, offset=100.0))


def news_zip(shares: list[int]) -> bytes:
    """The real layout: fields separated by ', ', so names and values carry a leading space."""
    lines = [", ".join(NEWS_HEADER)]
    for row, share in enumerate(shares):
        values = [f"http://mashable.com/2013/01/07/article-{row}/"]
        values += [f"{700 + row}.0"]  # timedelta
        values += [f"{row + column / 100:.2f}" for column in range(2, len(NEWS_HEADER) - 1)]
        values += [str(share)]
        lines.append(", ".join(values))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("OnlineNewsPopularity/OnlineNewsPopularity.names", "attribute notes\n")
        archive.writestr("OnlineNewsPopularity/OnlineNewsPopularity.csv", "\n".join(lines) + "\n")
    return buffer.getvalue()


def write_news(raw_dir: Path, shares: list[int]) -> Path:
    raw_dir.mkdir(parents=True, exist_ok=True)
    path = raw_dir / "OnlineNewsPopularity.zip"
    path.write_bytes(news_zip(shares))
    return path


# --- forest cover ---------------------------------------------------------------------------


def test_forest_cover_keeps_the_ten_quantitative_columns_and_shifts_labels(tmp_path: Path):
    cover_types = [1, 2, 3, 4, 5, 6, 7, 1, 2]
    rows = covtype_rows(cover_types)
    write_covtype(tmp_path, rows)

    data = uci.load_forest_cover(ForestCoverConfig(), tmp_path)

    assert data.feature_names == [
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
    assert data.features.shape == (9, 10)
    assert data.features.dtype == np.float32
    np.testing.assert_array_equal(data.features, rows[:, :10].astype(np.float32))
    assert data.labels.tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 1]
    assert len(data.class_names) == 7
    assert data.class_names[0] == "spruce/fir"


def test_forest_cover_with_wrong_column_count_is_rejected(tmp_path: Path):
    write_covtype(tmp_path, covtype_rows([1, 2])[:, 1:])

    with pytest.raises(DatasetError, match=r"covtype\.data\.gz.*expected 55 columns, found 54"):
        uci.load_forest_cover(ForestCoverConfig(), tmp_path)


def test_forest_cover_out_of_range_cover_type_is_rejected(tmp_path: Path):
    write_covtype(tmp_path, covtype_rows([1, 8]))

    with pytest.raises(DatasetError, match="cover type"):
        uci.load_forest_cover(ForestCoverConfig(), tmp_path)


# --- wine quality ---------------------------------------------------------------------------


def test_wine_quality_stacks_red_then_white_and_bins_quality(tmp_path: Path):
    write_wine(tmp_path, red=[3, 5, 6, 7, 8], white=[4, 6, 6, 9])

    data = uci.load_wine_quality(WineQualityConfig(), tmp_path)

    assert data.feature_names == uci.WINE_FEATURES
    assert len(data.feature_names) == 11
    assert "quality" not in data.feature_names
    assert data.labels.tolist() == [0, 0, 1, 2, 2, 0, 1, 1, 2]
    assert data.class_names == ["quality<6", "quality=6", "quality>6"]
    # Row 0 of red, then row 0 of white at index 5.
    np.testing.assert_allclose(data.features[0, :3], [1.00, 1.01, 1.02], rtol=1e-6)
    np.testing.assert_allclose(data.features[5, :3], [100.00, 100.01, 100.02], rtol=1e-6)


def test_wine_quality_rules_at_the_boundaries():
    labels = uci.wine_quality_labels(np.array([5, 6, 7, 0, 10]))
    assert labels.tolist() == [0, 1, 2, 0, 2]


# --- online news ----------------------------------------------------------------------------


def test_online_news_drops_the_documented_columns(tmp_path: Path):
    shares = list(range(1, 21))
    write_news(tmp_path, shares)

    data = uci.load_online_news(OnlineNewsConfig(), tmp_path)

    expected = [name for name in NEWS_HEADER if name not in NEWS_DROPPED and name != "shares"]
    assert len(NEWS_HEADER) == 61
    assert len(expected) == 45
    assert data.feature_names == expected
    assert data.features.shape == (20, 45)
    # Names are stripped of the file's leading spaces and values parsed as numbers.
    timedelta = data.features[:, data.feature_names.index("timedelta")]
    np.testing.assert_array_equal(timedelta, np.arange(700, 720, dtype=np.float32))
    assert data.class_names == uci.NEWS_CLASSES


def test_online_news_bins_shares_at_the_percentiles(tmp_path: Path):
    # 1..20: p50 = 10.5, p75 = 15.25, p95 = 19.05, right-closed bins, minimum in class 0.
    write_news(tmp_path, list(range(1, 21)))

    data = uci.load_online_news(OnlineNewsConfig(), tmp_path)

    assert data.labels.tolist() == [0] * 10 + [1] * 5 + [2] * 4 + [3]


def test_shares_equal_to_a_percentile_fall_in_the_lower_bin():
    # p50 = 3 and p75 = 4 are values of the column; p95 = 4.8.
    assert uci.shares_labels(np.array([1.0, 2.0, 3.0, 4.0, 5.0])).tolist() == [0, 0, 0, 1, 3]


def test_online_news_finds_the_csv_inside_the_zip_whatever_its_path(tmp_path: Path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(news_zip([1, 2, 3, 4]))) as source:
        text = source.read("OnlineNewsPopularity/OnlineNewsPopularity.csv")
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("news.csv", text)
    (tmp_path / "OnlineNewsPopularity.zip").write_bytes(buffer.getvalue())

    assert uci.load_online_news(OnlineNewsConfig(), tmp_path).features.shape == (4, 45)


# --- download cache -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "file_name"),
    [
        (ForestCoverConfig(), "covtype.data.gz"),
        (WineQualityConfig(), "winequality-red.csv"),
        (OnlineNewsConfig(), "OnlineNewsPopularity.zip"),
    ],
)
def test_missing_raw_file_offline_says_which_file_to_put_where(
    tmp_path: Path, config, file_name: str, no_network: list[str]
):
    raw_dir = tmp_path / "raw"

    with pytest.raises(DatasetError) as caught:
        load_tabular_data(config, raw_dir)

    message = str(caught.value)
    assert repr(file_name) in message
    assert str(raw_dir) in message
    assert no_network == [f"{uci.UCI_BASE}/{url_tail(file_name)}"]
    assert no_network[0] in message
    assert leftovers(raw_dir) == []


def leftovers(raw_dir: Path) -> list[str]:
    """Files in the cache other than its lock file."""
    return sorted(path.name for path in raw_dir.iterdir() if path.name != ".cache.lock")


def url_tail(file_name: str) -> str:
    return {
        "covtype.data.gz": "covtype/covtype.data.gz",
        "winequality-red.csv": "wine-quality/winequality-red.csv",
        "OnlineNewsPopularity.zip": "00332/OnlineNewsPopularity.zip",
    }[file_name]


def test_download_lands_atomically_and_records_its_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    payload = wine_csv([5, 6, 7], offset=1.0)
    asked = serve(monkeypatch, {uci.WINE_RED.url: payload})

    path = uci.fetch_raw_file(uci.WINE_RED.name, uci.WINE_RED.url, tmp_path)

    assert asked == [
        "https://archive.ics.uci.edu/ml/machine-learning-databases/wine-quality/winequality-red.csv"
    ]
    assert path == tmp_path / "winequality-red.csv"
    assert path.read_bytes() == payload
    checksums = json.loads((tmp_path / "checksums.json").read_text())
    assert checksums == {"winequality-red.csv": hashlib.sha256(payload).hexdigest()}
    assert not list(tmp_path.glob("*.part"))
    # A file in the cache is used as is: no second download.
    uci.fetch_raw_file(uci.WINE_RED.name, uci.WINE_RED.url, tmp_path)
    assert len(asked) == 1


def test_interrupted_download_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    class CutConnection(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 0:
                raise ConnectionResetError("connection reset by peer")
            return super().read(4)

    monkeypatch.setattr(
        urllib.request, "urlopen", lambda url, timeout=None: CutConnection(b"0123456789")
    )

    with pytest.raises(
        DatasetError, match=r"cannot download covtype\.data\.gz from https://archive"
    ):
        uci.fetch_raw_file(uci.COVTYPE.name, uci.COVTYPE.url, tmp_path)

    assert leftovers(tmp_path) == []


def test_tampered_cached_file_fails_the_checksum_until_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    write_wine(tmp_path, red=[5, 6, 7], white=[6, 7])
    first = uci.load_wine_quality(WineQualityConfig(), tmp_path)
    red = tmp_path / "winequality-red.csv"
    recorded = json.loads((tmp_path / "checksums.json").read_text())
    assert recorded["winequality-red.csv"] == hashlib.sha256(red.read_bytes()).hexdigest()
    assert set(recorded) == {"winequality-red.csv", "winequality-white.csv"}

    red.write_bytes(red.read_bytes() + b"9.0;0.5;0.1;2.0;0.07;11;34;0.99;3.5;0.6;9.4;8\n")

    with pytest.raises(DatasetError, match=r"checksum mismatch for .*winequality-red\.csv.*delete"):
        uci.load_wine_quality(WineQualityConfig(), tmp_path)

    # Following the message: delete it, and the next run downloads (and records) afresh.
    red.unlink()
    serve(monkeypatch, {uci.WINE_RED.url: wine_csv([3, 8], offset=1.0)})
    second = uci.load_wine_quality(WineQualityConfig(), tmp_path)
    assert len(first.labels) == 5
    assert second.labels.tolist() == [0, 2, 1, 2]


def test_raw_file_dropped_in_after_a_failed_download_is_accepted(tmp_path: Path):
    with pytest.raises(DatasetError, match="covtype"):
        uci.load_forest_cover(ForestCoverConfig(), tmp_path)

    write_covtype(tmp_path, covtype_rows([1, 2, 3]))

    assert uci.load_forest_cover(ForestCoverConfig(), tmp_path).labels.tolist() == [0, 1, 2]


def test_truncated_raw_file_says_to_delete_it(tmp_path: Path):
    path = write_covtype(tmp_path, covtype_rows([1, 2, 3]))
    path.write_bytes(path.read_bytes()[:20])

    with pytest.raises(DatasetError, match=r"cannot parse .*covtype\.data\.gz.*delete it"):
        uci.load_forest_cover(ForestCoverConfig(), tmp_path)


# --- subsample ------------------------------------------------------------------------------

COUNTS = [300, 200, 100, 50, 25, 15, 10]


def write_imbalanced_covtype(raw_dir: Path) -> None:
    write_covtype(raw_dir, covtype_rows(np.repeat(np.arange(1, 8), COUNTS).tolist()))


def test_subsample_is_stratified_and_of_the_asked_size(tmp_path: Path):
    write_imbalanced_covtype(tmp_path)

    data = uci.load_forest_cover(ForestCoverConfig(subsample=70), tmp_path)

    assert data.features.shape == (70, 10)
    counts = np.bincount(data.labels, minlength=7)
    expected = np.array(COUNTS) * 70 / sum(COUNTS)
    assert np.all(np.abs(counts - expected) <= 1), counts
    assert counts[:3].tolist() == [30, 20, 10]
    # Kept rows are real rows of the file, in file order: elevation encodes the row number.
    rows = data.features[:, 0] / 100
    assert np.all(np.diff(rows) > 0)
    full = covtype_rows(np.repeat(np.arange(1, 8), COUNTS).tolist())
    np.testing.assert_array_equal(data.labels, full[rows.astype(int), 54] - 1)


def test_subsample_follows_the_split_seed(tmp_path: Path):
    write_imbalanced_covtype(tmp_path)

    def kept(seed: int) -> np.ndarray:
        config = ForestCoverConfig(subsample=70, split=SplitConfig(seed=seed))
        return uci.load_forest_cover(config, tmp_path).features[:, 0]

    np.testing.assert_array_equal(kept(1), kept(1))
    assert not np.array_equal(kept(1), kept(2))


def test_subsample_larger_than_the_data_keeps_every_row(tmp_path: Path):
    write_imbalanced_covtype(tmp_path)

    data = uci.load_forest_cover(ForestCoverConfig(subsample=10_000), tmp_path)

    assert len(data.labels) == sum(COUNTS)


def test_subsample_of_wine_and_news(tmp_path: Path):
    write_wine(tmp_path, red=[5] * 10 + [6] * 6, white=[7] * 4)
    write_news(tmp_path, list(range(1, 41)))

    wine = load_tabular_data(WineQualityConfig(subsample=10), tmp_path)
    news = load_tabular_data(OnlineNewsConfig(subsample=20), tmp_path)

    assert np.bincount(wine.labels).tolist() == [5, 3, 2]
    assert len(news.labels) == 20
    # Percentiles come from all 40 rows, before subsampling: 20 / 10 / 8 / 2 rows per class.
    assert np.bincount(news.labels).tolist() == [10, 5, 4, 1]


def test_uci_configs_have_no_file_fingerprint():
    assert dataset_fingerprint(ForestCoverConfig()) is None
    assert dataset_fingerprint(WineQualityConfig()) is None
