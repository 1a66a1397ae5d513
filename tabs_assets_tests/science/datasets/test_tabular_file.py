"""tabs_assets.science.datasets.tabular_file: the generic CSV/Parquet loader."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabs_assets.config.datasets import TabularFileConfig
from tabs_assets.science.datasets.tabular import DatasetError
from tabs_assets.science.datasets.tabular_file import load_tabular_file


def patients() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [50.0, 61.0, 72.0, 45.0, 66.0, 58.0],
            "chest_pain": ["typical", "none", "atypical", "none", "typical", "none"],
            "serum": [1.2, 0.0, 2.5, -1.0, 3.1, 0.9],
            "sex": ["M", "F", "F", "M", "F", "M"],
            "outcome": ["died", "survived", "survived", "died", "died", "survived"],
        }
    )


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def file_config(path: Path, **overrides) -> TabularFileConfig:
    settings = {
        "path": path,
        "label_column": "outcome",
        "categorical_columns": ["chest_pain", "sex"],
    }
    return TabularFileConfig(**{**settings, **overrides})


def test_categorical_columns_are_one_hot_in_place_with_sorted_categories(tmp_path: Path):
    path = write(patients(), tmp_path / "patients.csv")

    data = load_tabular_file(file_config(path))

    assert data.feature_names == [
        "age",
        "chest_pain=atypical",
        "chest_pain=none",
        "chest_pain=typical",
        "serum",
        "sex=F",
        "sex=M",
    ]
    # Row 2: 72 years, atypical pain, serum 2.5, female.
    np.testing.assert_array_equal(data.features[2], [72.0, 1, 0, 0, 2.5, 1, 0])
    assert data.class_names == ["died", "survived"]
    assert data.labels.tolist() == [0, 1, 1, 0, 0, 1]


def test_positive_columns_drop_rows_with_values_at_or_below_zero(tmp_path: Path):
    path = write(patients(), tmp_path / "patients.csv")

    data = load_tabular_file(file_config(path, positive_columns=["serum"]))

    # serum 0.0 (age 61) and -1.0 (age 45) are dropped.
    assert data.features[:, 0].tolist() == [50.0, 72.0, 66.0, 58.0]
    assert data.labels.tolist() == [0, 1, 0, 1]


def test_label_mapping_sets_the_class_order(tmp_path: Path):
    path = write(patients(), tmp_path / "patients.csv")

    data = load_tabular_file(file_config(path, label_mapping={"survived": 0, "died": 1}))

    assert data.class_names == ["survived", "died"]
    assert data.labels.tolist() == [1, 0, 0, 1, 1, 0]


def test_label_mapping_may_merge_raw_labels(tmp_path: Path):
    frame = pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.4], "grade": [1, 2, 3, 2]})
    path = write(frame, tmp_path / "grades.csv")

    config = TabularFileConfig(
        path=path, label_column="grade", label_mapping={"1": 0, "2": 0, "3": 1}
    )
    data = load_tabular_file(config)

    assert data.class_names == ["1|2", "3"]
    assert data.labels.tolist() == [0, 0, 1, 0]


def test_numeric_labels_without_mapping_sort_numerically(tmp_path: Path):
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "y": [10, 2, 2, 10, 5]})
    path = write(frame, tmp_path / "numbers.csv")

    data = load_tabular_file(TabularFileConfig(path=path, label_column="y"))

    assert data.class_names == ["2", "5", "10"]
    assert data.labels.tolist() == [2, 0, 0, 2, 1]


def test_whole_number_float_labels_read_as_integers(tmp_path: Path):
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0.0, 1.0, 1.0]})
    path = write(frame, tmp_path / "floats.parquet")

    data = load_tabular_file(
        TabularFileConfig(path=path, label_column="y", label_mapping={"1": 0, "0": 1})
    )

    assert data.labels.tolist() == [1, 0, 0]


def test_feature_columns_select_and_order_the_features(tmp_path: Path):
    path = write(patients(), tmp_path / "patients.csv")

    # chest_pain and sex are text but not selected, so they need no declaration.
    config = TabularFileConfig(path=path, label_column="outcome", feature_columns=["serum", "age"])
    data = load_tabular_file(config)

    assert data.feature_names == ["serum", "age"]
    np.testing.assert_array_equal(data.features[0], np.array([1.2, 50.0], dtype=np.float32))


def test_parquet_and_csv_give_the_same_data(tmp_path: Path):
    csv = load_tabular_file(file_config(write(patients(), tmp_path / "patients.csv")))
    parquet = load_tabular_file(file_config(write(patients(), tmp_path / "patients.parquet")))

    assert parquet.feature_names == csv.feature_names
    assert parquet.class_names == csv.class_names
    np.testing.assert_array_equal(parquet.features, csv.features)
    np.testing.assert_array_equal(parquet.labels, csv.labels)


# --- generic file: bad inputs ---------------------------------------------------------------


def bad(frame: pd.DataFrame, tmp_path: Path, **overrides) -> tuple[Path, TabularFileConfig]:
    path = write(frame, tmp_path / "bad.csv")
    return path, file_config(path, **overrides)


def test_missing_file_is_named(tmp_path: Path):
    path = tmp_path / "nowhere.csv"

    with pytest.raises(DatasetError, match=r"nowhere\.csv does not exist"):
        load_tabular_file(file_config(path))


def test_unknown_suffix_is_rejected(tmp_path: Path):
    path = tmp_path / "patients.xlsx"
    path.write_bytes(b"not a table")

    with pytest.raises(DatasetError, match=r"patients\.xlsx: unknown file type"):
        load_tabular_file(file_config(path))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"label_column": "death"}, "label column 'death' not found"),
        ({"feature_columns": ["age", "weight"]}, "feature column 'weight' not found"),
        ({"positive_columns": ["platelets"]}, "positive column 'platelets' not found"),
        ({"positive_columns": ["sex"]}, "positive column 'sex' is not numeric"),
        ({"categorical_columns": ["sex"]}, "feature column 'chest_pain' is not numeric"),
        (
            {"categorical_columns": ["chest_pain", "sex", "outcome"]},
            r"\['outcome'\] are not feature",
        ),
        ({"label_mapping": {"died": 0}}, r"values \['survived'\] that are not in"),
        ({"label_mapping": {"died": 0, "survived": 2}}, "must use every class index 0..2"),
        ({"feature_columns": ["age", "outcome"]}, "'outcome' is also listed as a feature"),
    ],
)
def test_bad_configs_name_the_file_and_column(tmp_path: Path, overrides: dict, message: str):
    path, config = bad(patients(), tmp_path, **overrides)

    with pytest.raises(DatasetError, match=message) as caught:
        load_tabular_file(config)

    assert str(path) in str(caught.value)


def test_missing_labels_are_rejected(tmp_path: Path):
    frame = patients().assign(outcome=["died", None, "survived", "died", "died", None])
    path, config = bad(frame, tmp_path)

    with pytest.raises(DatasetError, match="label column 'outcome' has 2 missing values"):
        load_tabular_file(config)
    assert path.exists()


def test_a_single_class_is_rejected(tmp_path: Path):
    path, config = bad(patients().assign(outcome="died"), tmp_path)

    with pytest.raises(DatasetError, match=r"bad\.csv: label column 'outcome' has 1 class"):
        load_tabular_file(config)
    assert path.exists()


def test_a_single_class_left_after_positive_filtering_is_rejected(tmp_path: Path):
    frame = patients().assign(serum=[1.0, -1.0, -2.0, 1.0, 1.0, -3.0])
    _, config = bad(frame, tmp_path, positive_columns=["serum"])

    with pytest.raises(DatasetError, match="has 1 class"):
        load_tabular_file(config)


def test_missing_features_are_rejected(tmp_path: Path):
    frame = patients().assign(age=[50.0, np.nan, 72.0, 45.0, 66.0, 58.0])
    _, config = bad(frame, tmp_path)

    with pytest.raises(DatasetError, match=r"bad\.csv: feature column 'age' has 1 missing"):
        load_tabular_file(config)


def test_missing_categories_are_rejected(tmp_path: Path):
    frame = patients().assign(sex=["M", "F", None, "M", "F", "M"])
    _, config = bad(frame, tmp_path)

    with pytest.raises(DatasetError, match="categorical column 'sex' has 1 missing"):
        load_tabular_file(config)
