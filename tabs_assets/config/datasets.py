"""Dataset configs (SCIENCE.md §1): one discriminated union member per dataset kind."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from tabs_assets.config.base import Seed, StrictModel


class SplitConfig(StrictModel):
    """Train/val/test split drawn once per dataset config from its own seed (§1.4)."""

    seed: Seed = 0
    train: float = Field(0.6, gt=0, lt=1)
    val: float = Field(0.2, gt=0, lt=1)
    test: float = Field(0.2, gt=0, lt=1)
    stratify: bool = True

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> "SplitConfig":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"train + val + test must be 1, got {total:g}")
        return self


class _DatasetBase(StrictModel):
    """What a data set reads, as data: the pipeline reads these, never the config's type."""

    split: SplitConfig = SplitConfig()

    @property
    def label(self) -> str:
        """Short readable name for reports."""
        return self.kind  # type: ignore[attr-defined]  # every data set config has a kind

    @property
    def data_file(self) -> Path | None:
        """The user's file the data are read from: its content is part of the cache key and it
        is checked before a run. None: the data are generated, bundled or downloaded."""
        return None


class CakeOnSeaConfig(_DatasetBase):
    """Synthetic 3-class data set, the default (§1.1)."""

    kind: Literal["cake_on_sea"] = "cake_on_sea"
    seed: Seed = 42
    n_points: int = Field(100_000, gt=0, description="initial draws before the dead zone is cut")
    n_dims: int = Field(2, ge=2)
    n_uncorrelated_dims: int = Field(2, ge=2)
    gaussian: bool = False

    @model_validator(mode="after")
    def _dims_consistent(self) -> "CakeOnSeaConfig":
        if self.n_uncorrelated_dims > self.n_dims:
            raise ValueError("n_uncorrelated_dims must be <= n_dims")
        return self


class _UciBase(_DatasetBase):
    subsample: int | None = Field(
        None, gt=0, description="keep this many rows (stratified, split seed); None = all"
    )


class ForestCoverConfig(_UciBase):
    """UCI covertype: 10 quantitative columns, 7 classes (§1.2)."""

    kind: Literal["forest_cover"] = "forest_cover"


class WineQualityConfig(_UciBase):
    """UCI wine quality, red + white, quality binned to 3 classes (§1.2)."""

    kind: Literal["wine_quality"] = "wine_quality"


class OnlineNewsConfig(_UciBase):
    """UCI online news popularity, shares binned at percentiles to 4 classes (§1.2)."""

    kind: Literal["online_news"] = "online_news"


class SklearnDatasetConfig(_DatasetBase):
    """Real tabular data bundled with scikit-learn: needs no network (§1.3)."""

    kind: Literal["sklearn"] = "sklearn"
    name: Literal["breast_cancer", "wine", "iris", "digits"]

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"


class TabularFileConfig(_DatasetBase):
    """Your own CSV or Parquet file (§1.3). The file's checksum is part of the cache key."""

    kind: Literal["tabular_file"] = "tabular_file"
    path: Path = Field(
        strict=False,
        description="CSV or Parquet file; a relative path is relative to the config file's folder",
    )
    label_column: str
    feature_columns: list[str] | None = Field(
        None, description="None = every column except the label"
    )
    categorical_columns: list[str] = Field(default_factory=list, description="one-hot encoded")
    positive_columns: list[str] = Field(
        default_factory=list, description="rows with a value <= 0 in these columns are dropped"
    )
    label_mapping: dict[str, Annotated[int, Field(ge=0)]] | None = Field(
        None, description="raw label (as text) -> class index; None = sorted unique labels"
    )

    @property
    def data_file(self) -> Path:
        return self.path


DatasetConfig = Annotated[
    CakeOnSeaConfig
    | ForestCoverConfig
    | WineQualityConfig
    | OnlineNewsConfig
    | SklearnDatasetConfig
    | TabularFileConfig,
    Field(discriminator="kind"),
]
