"""Refuse the absurd before it runs: rough memory and work a config implies, against limits.

Pure and cheap (no data is read): ``register`` calls ``resource_problems`` for every config.
The estimates are upper bounds of the right order, not predictions: each counts the largest
arrays a run holds at once and the multiply-adds of full training (no early stopping), so a
sound experiment sits orders of magnitude below the limits, an absurd one far above them.
Raise a limit with the environment variables below (README, "Limits").
"""

import itertools
from dataclasses import dataclass

from tabs_assets import settings
from tabs_assets.config.datasets import (
    CakeOnSeaConfig,
    ForestCoverConfig,
    OnlineNewsConfig,
    SklearnDatasetConfig,
    WineQualityConfig,
)
from tabs_assets.config.experiment import ExperimentConfig

# Work is in multiply-adds. Measured: the shipped studies need at most ~1e14 (and ~1 GB), the
# full forest cover data with the default models ~5e12 (and ~2 GB); settings.py has the limits.
# Larger steps than these only overflow (the data is standardised: unit scale).
MAX_STEP_SIZE = 1e3
MAX_SHIFT = 1e6

# (rows, features) of the built-in data sets (features after one-hot encoding, upper bounds).
KNOWN_SHAPES = {
    ForestCoverConfig: (581_012, 10),
    WineQualityConfig: (6_497, 12),
    OnlineNewsConfig: (39_644, 60),
}
SKLEARN_SHAPES = {
    "breast_cancer": (569, 30),
    "wine": (178, 13),
    "iris": (150, 4),
    "digits": (1797, 64),
}
MAX_CLASSES = 10  # of the built-in data sets; a file's are counted by the data check
FLOAT_BYTES = 4
BYTES_PER_GB = 1e9


@dataclass(frozen=True)
class Estimate:
    """Totals and their parts: (what, the dotted key that drives it) -> bytes or multiply-adds."""

    memory: dict[tuple[str, str], float]
    work: dict[tuple[str, str], float]

    @property
    def memory_gb(self) -> float:
        return sum(self.memory.values()) / BYTES_PER_GB

    @property
    def total_work(self) -> float:
        return sum(self.work.values())


def data_shape(config: ExperimentConfig) -> tuple[int, int, int] | None:
    """(rows, features, classes) the data set has at most; None for a user file (checked apart)."""
    dataset = config.dataset
    if isinstance(dataset, CakeOnSeaConfig):
        return dataset.n_points, dataset.n_dims, 3
    if isinstance(dataset, SklearnDatasetConfig):
        rows, width = SKLEARN_SHAPES[dataset.name]
        return rows, width, MAX_CLASSES
    for kind, (rows, width) in KNOWN_SHAPES.items():
        if isinstance(dataset, kind):
            return min(rows, dataset.subsample or rows), width, MAX_CLASSES
    return None


def _mlp_parameters(sizes: list[int]) -> int:
    return sum((a + 1) * b for a, b in itertools.pairwise(sizes))


def _model_parameters(model: object, width: int) -> int:
    hidden = list(getattr(model, "hidden", []))
    layers = getattr(model, "coupling_layers", None)
    if layers is not None:  # NICE: each coupling is an MLP from half the input to the other half
        half = max(1, width // 2)
        return layers * _mlp_parameters([half, *hidden, width - half]) + width
    latent = getattr(model, "latent_dim", width)
    return 2 * _mlp_parameters([width, *hidden, 2 * latent])  # encoder + decoder, generously


def estimate(config: ExperimentConfig, rows: int, width: int, classes: int) -> Estimate:
    """Peak memory (GB) and multiply-adds of materializing every asset of ``config``."""
    split = config.dataset.split
    n_train = rows * split.train
    n_explained = (
        rows
        * {"train": split.train, "val": split.val, "test": split.test}[config.explanation.split]
    )
    if config.explanation.max_points is not None:
        n_explained = min(n_explained, config.explanation.max_points)
    steps = config.explainer.n_steps + 1
    classifier = _mlp_parameters([width, *config.classifier.hidden, classes])
    generative = _model_parameters(config.generative_model, width)
    reference = _model_parameters(config.reference_density, width)
    regularization = getattr(config.generative_model, "path_regularization", None)
    models = (
        ("classifier", config.classifier, classifier),
        ("generative_model", config.generative_model, generative),
        ("reference_density", config.reference_density, reference),
    )
    memory = {
        ("data: rows x width", "dataset"): rows * width * 8 * 4,  # float64, splits, normalised
        ("paths: points x steps x width", "explainer.n_steps"): n_explained
        * steps
        * width
        * FLOAT_BYTES
        * 4,
        ("plot grid: resolution^2 x width", "plots.grid_resolution"): config.plots.grid_resolution
        ** 2
        * width
        * FLOAT_BYTES
        * 4,
    }
    work = {
        ("explainer: points x steps x parameters", "explainer.n_steps"): 6.0
        * n_explained
        * steps
        * (classifier + generative),
        ("metrics: path points x LOF rows x width", "metrics.lof_max_train_rows"): 1.0
        * n_explained
        * steps
        * min(n_train, config.metrics.lof_max_train_rows)
        * width,
        ("plot grid: resolution^2 x parameters", "plots.grid_resolution"): 2.0
        * config.plots.grid_resolution**2
        * (classifier + generative),
    }
    for name, model, parameters in models:
        training = model.training
        batch = training.batch_size or max(1, n_train / 20)
        widest = max([width, *model.hidden])
        memory[(f"{name}: parameters", f"{name}.hidden")] = parameters * FLOAT_BYTES * 4
        memory[(f"{name}: batch x layer widths", f"{name}.training.batch_size")] = (
            batch * widest * len(model.hidden) * FLOAT_BYTES * 8
        )
        per_row = 6.0 * parameters
        if name == "generative_model" and regularization is not None:
            path_steps = regularization.explainer.n_steps + 1
            per_row *= path_steps
            memory[
                (f"{name}: batch x path steps", f"{name}.path_regularization.explainer.n_steps")
            ] = batch * path_steps * width * FLOAT_BYTES * 8
        work[(f"{name}: epochs x rows x parameters", f"{name}.training.max_epochs")] = (
            training.max_epochs * n_train * per_row
        )
    return Estimate(memory=memory, work=work)


def value_problems(config: ExperimentConfig) -> list[str]:
    """Finite values that only overflow."""
    problems = []
    explainers = [("explainer", config.explainer)]
    regularization = getattr(config.generative_model, "path_regularization", None)
    if regularization is not None:
        explainers.append(
            ("generative_model.path_regularization.explainer", regularization.explainer)
        )
    for where, explainer in explainers:
        if explainer.step_size > MAX_STEP_SIZE:
            problems.append(
                f"{where}.step_size: {explainer.step_size:g} is larger than {MAX_STEP_SIZE:g} "
                f"(the data is standardised)"
            )
        search = getattr(explainer, "threshold_search", None)
        if search is not None and search.max_shift > MAX_SHIFT:
            problems.append(
                f"{where}.threshold_search.max_shift: {search.max_shift:g} is larger than "
                f"{MAX_SHIFT:g}"
            )
    return problems


def resource_problems(
    config: ExperimentConfig, shape: tuple[int, int, int] | None = None
) -> list[str]:
    """Lines naming the estimate and the limit when ``config`` asks for too much.

    ``shape``: (rows, features, classes) of a user file, from the data check.
    """
    problems = value_problems(config)
    shape = shape or data_shape(config)
    if shape is None:
        return problems
    result = estimate(config, *shape)
    size = f"{shape[0]:.3g} rows x {shape[1]} features"
    if result.memory_gb > settings.max_memory_gb():
        (what, key), part = max(result.memory.items(), key=lambda item: item[1])
        problems.append(
            f"{key}: the config needs about {result.memory_gb:.3g} GB of memory (largest part, "
            f"{what}: {part / BYTES_PER_GB:.3g} GB; {size}); the limit is "
            f"{settings.max_memory_gb():g} GB "
            f"(raise it with {settings.MAX_MEMORY_GB_ENV})"
        )
    if result.total_work > settings.max_work():
        (what, key), part = max(result.work.items(), key=lambda item: item[1])
        problems.append(
            f"{key}: the config needs about {result.total_work:.3g} multiply-adds (largest "
            f"part, {what}: {part:.3g}; {size}); the limit is {settings.max_work():.3g} "
            f"(raise it with {settings.MAX_WORK_ENV})"
        )
    return problems
