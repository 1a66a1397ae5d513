"""Model assets: classifier, generative model (optionally path-regularized), reference density."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tabs_assets import settings
from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.defs.cached import config_asset
from tabs_assets.defs.compute import Computed, Inputs, RunLog
from tabs_assets.ui.markdown import markdown_table

TRAINING_POOL = settings.training_pool()
CONFUSION_PNG = "confusion_matrix.png"
CURVES_PNG = "learning_curves.png"


def load_model(path: Path) -> Any:
    from tabs_assets.science.models.trained import TrainedModel

    return TrainedModel.load(path)


def epoch_logger(log: RunLog, asset: str, max_epochs: int | None = None) -> Callable[[dict], None]:
    """Progress in the Dagster log, one line per epoch: epoch k of max, time so far, losses."""
    from tabs_assets.ui.describe import epoch_progress

    return epoch_progress(log, asset, max_epochs)


def _model_report(model: Any, title: str) -> Computed:
    from tabs_assets.science.plotting.models import learning_curves_figure
    from tabs_assets.science.plotting.style import figure_bytes

    scalars = {
        f"test_{name}": float(value)
        for name, value in model.test_metrics.items()
        if isinstance(value, (int, float))
    }
    return Computed(
        payload=model,
        metrics={**scalars, "best_epoch": model.best_epoch, "epochs": len(model.history)},
        history=list(model.history),
        files={CURVES_PNG: figure_bytes(learning_curves_figure(model.history, title))},
        previews=[CURVES_PNG],
    )


@config_asset(
    "classifier", group="models", loader=load_model, kinds={"pytorch"}, pool=TRAINING_POOL
)
def classifier(config: ExperimentConfig, inputs: Inputs, log: RunLog) -> Computed:
    from tabs_assets.science.models.training import train_classifier
    from tabs_assets.science.plotting.models import confusion_matrix_figure
    from tabs_assets.science.plotting.style import figure_bytes

    data = inputs["dataset"]
    model = train_classifier(
        data,
        config.classifier,
        on_epoch_end=epoch_logger(log, "classifier", config.classifier.training.max_epochs),
    )
    report = _model_report(model, "Classifier learning curves")
    matrix = model.test_metrics["confusion_matrix"]
    report.files[CONFUSION_PNG] = figure_bytes(confusion_matrix_figure(matrix, data.class_names))
    report.previews.insert(0, CONFUSION_PNG)
    report.tables["confusion_matrix"] = markdown_table(
        ["true \\ predicted", *data.class_names],
        [[name, *row] for name, row in zip(data.class_names, matrix, strict=True)],
    )
    return report


@config_asset(
    "generative_model", group="models", loader=load_model, kinds={"pytorch"}, pool=TRAINING_POOL
)
def generative_model(config: ExperimentConfig, inputs: Inputs, log: RunLog) -> Computed:
    from tabs_assets.science.models.training import train_generative_model

    spec = config.generative_model
    on_epoch_end = epoch_logger(log, "generative_model", spec.training.max_epochs)
    if spec.path_regularized:
        from tabs_assets.science.models.path_regularized import train_path_regularized_nice

        frozen = inputs["classifier"].build()
        model = train_path_regularized_nice(
            inputs["dataset"], spec, frozen, on_epoch_end=on_epoch_end
        )
    else:
        model = train_generative_model(inputs["dataset"], spec, on_epoch_end=on_epoch_end)
    return _model_report(model, f"{spec.kind.upper()} learning curves")


@config_asset(
    "reference_density", group="models", loader=load_model, kinds={"pytorch"}, pool=TRAINING_POOL
)
def reference_density(config: ExperimentConfig, inputs: Inputs, log: RunLog) -> Computed:
    from tabs_assets.science.models.training import train_generative_model

    model = train_generative_model(
        inputs["dataset"],
        config.reference_density,
        on_epoch_end=epoch_logger(
            log, "reference_density", config.reference_density.training.max_epochs
        ),
    )
    return _model_report(model, "Reference NICE learning curves")
