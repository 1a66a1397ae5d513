"""The experiment config: one per Dagster config partition."""

from typing import Literal

from pydantic import Field

from tabs_assets.config.base import Seed, StrictModel, neutral
from tabs_assets.config.datasets import CakeOnSeaConfig, DatasetConfig
from tabs_assets.config.explainers import ExplainerConfig, LatentShiftConfig
from tabs_assets.config.losses import GeneralValidityLoss, ValidityLossConfig
from tabs_assets.config.models import (
    ClassifierConfig,
    GenerativeModelConfig,
    NiceConfig,
    ReferenceDensityConfig,
)
from tabs_assets.config.slurm import SlurmSettings

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.]*$"
PARTITION_KEY_PATTERN = r"^[a-z0-9][a-z0-9_.]*-[0-9a-f]{8}$"  # <name>-<8 hex>
# Partition keys (<name>-<8 hex>) become file and folder names: keep them far below 255 bytes.
MAX_NAME_LENGTH = 64
MAX_DESCRIPTION_LENGTH = 10_000


class ExplanationConfig(StrictModel):
    """Which points are explained and how targets are drawn (§4)."""

    seed: Seed = Field(0, description="draws one target per test point, shared by all methods")
    split: Literal["train", "val", "test"] = "test"
    max_points: int | None = Field(None, gt=0, description="explain the first N rows; None = all")
    chunk_size: int = neutral(4096, "rows per explainer batch (memory only, never results)", gt=0)


# The names of the metrics of an explanation_metrics entry: science.metrics.path_metrics computes
# them (a test compares), study reports and the asset checks name them.
COUNTERFACTUAL_METRICS = ("cf_step", "cf_l1", "cf_l2", "cf_l0", "cf_nll", "cf_lof", "cf_ynn")
METRICS = (
    "n_paths",
    "n_valid",
    "validity_rate",
    "validity_rate_last",
    "time_per_step_ns",
    "mean_nll",
    "mean_boundary_crossings",
    "mean_distance_to_max",
    "l1_auc",
    "sparsity_l0",
    "lof_auc",
    "lof_fit_rows",
    "ynn",
    *COUNTERFACTUAL_METRICS,
)
# Metrics averaged over valid paths: NaN is the documented value when no path is valid.
OVER_VALID_PATHS = (
    "mean_nll",
    "mean_boundary_crossings",
    "mean_distance_to_max",
    "ynn",
    *COUNTERFACTUAL_METRICS,
)
# Metrics over the steps before the counterfactual: NaN also when every valid path starts at
# its target (cf_step == 0: no such step).
OVER_STEPS_BEFORE = ("mean_nll", "mean_distance_to_max")


class MetricsConfig(StrictModel):
    """Path metrics (§6)."""

    lof_neighbors: int = Field(20, gt=0)
    lof_max_train_rows: int = Field(10_000, gt=0, description="LOF fit subsample (split seed)")
    ynn_neighbors: int = Field(5, gt=0)


class PlotsConfig(StrictModel):
    """Figures per config (§7.6, §8)."""

    n_example_paths: int = Field(20, gt=0)
    grid_resolution: int = Field(200, ge=10)
    formats: list[Literal["png", "svg"]] = Field(default_factory=lambda: ["png", "svg"])


class ExperimentConfig(StrictModel):
    """Everything one experiment needs; each asset hashes only its own slice of it."""

    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=MAX_NAME_LENGTH,
        description=f"prefix of the partition key (at most {MAX_NAME_LENGTH} characters)",
    )
    description: str = neutral("", "free text shown in the UI", max_length=MAX_DESCRIPTION_LENGTH)
    dataset: DatasetConfig = CakeOnSeaConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    generative_model: GenerativeModelConfig = NiceConfig()
    reference_density: ReferenceDensityConfig = ReferenceDensityConfig()
    explainer: ExplainerConfig = LatentShiftConfig()
    loss: ValidityLossConfig = GeneralValidityLoss()
    explanation: ExplanationConfig = ExplanationConfig()
    metrics: MetricsConfig = MetricsConfig()
    plots: PlotsConfig = PlotsConfig()
    slurm: SlurmSettings = neutral(
        SlurmSettings(), "resources of this config's Slurm jobs (README, 'Slurm'); never in a key"
    )
