"""tabs_assets.science.datasets.fingerprint: data file fingerprints."""

import hashlib
from pathlib import Path

import pytest

from tabs_assets.config.datasets import CakeOnSeaConfig, SklearnDatasetConfig
from tabs_assets.science.datasets.fingerprint import dataset_fingerprint, file_fingerprint
from tabs_assets.science.datasets.tabular import DatasetError
from tabs_assets_tests.science.datasets.test_tabular_file import file_config, patients, write


def test_file_fingerprint_is_the_sha256_and_follows_edits(tmp_path: Path):
    path = write(patients(), tmp_path / "patients.csv")
    before = file_fingerprint(path)

    assert before == hashlib.sha256(path.read_bytes()).hexdigest()
    assert dataset_fingerprint(file_config(path)) == before
    write(patients().assign(age=1.0), path)
    assert file_fingerprint(path) != before


def test_fingerprint_of_a_missing_file_names_it(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"gone\.csv does not exist"):
        dataset_fingerprint(file_config(tmp_path / "gone.csv"))


def test_generated_and_bundled_data_have_no_fingerprint():
    assert dataset_fingerprint(CakeOnSeaConfig()) is None
    assert dataset_fingerprint(SklearnDatasetConfig(name="iris")) is None


def test_the_plots_key_of_a_file_config_hashes_the_file_once(tmp_path: Path, monkeypatch):
    """Every key of a config includes the dataset's: the file is still read once per process."""
    import tabs_assets.science.datasets.fingerprint as fingerprint
    from tabs_assets.config.experiment import ExperimentConfig
    from tabs_assets.graph.nodes import store_key

    path = write(patients(), tmp_path / "patients.csv")
    monkeypatch.setattr(fingerprint, "RACY_NS", -1)  # just written, but counts as settled
    hashed: list[Path] = []

    def counting(file: Path) -> str:
        hashed.append(file)
        return hashlib.sha256(file.read_bytes()).hexdigest()

    monkeypatch.setattr(fingerprint, "file_sha256", counting)
    config = ExperimentConfig(name="files", dataset=file_config(path))
    first = store_key("plots", config)
    assert hashed == [path]
    assert store_key("plots", config) == first and hashed == [path]
    write(patients().assign(age=1.0), path)  # an edit is a new version: hashed again
    assert store_key("plots", config) != first and hashed == [path, path]
