"""Explanation assets: counterfactual paths for a whole split, then their metrics."""

from pathlib import Path
from typing import Any

from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.defs.cached import config_asset
from tabs_assets.defs.compute import Computed, Inputs, RunLog
from tabs_assets.ui.markdown import markdown_table


def load_paths(path: Path) -> Any:
    from tabs_assets.science.explainers.paths import CounterfactualPaths

    return CounterfactualPaths.load(path)


def load_record(path: Path) -> Any:
    from tabs_assets.science.records import Record

    return Record.load(path)


def explained_rows(config: ExperimentConfig, data: Any) -> tuple[Any, Any]:
    """Normalised features and labels of the explained split (first ``max_points`` rows)."""
    features, labels = data.split_arrays(config.explanation.split)
    limit = config.explanation.max_points or len(labels)
    return features[:limit], labels[:limit]


@config_asset("counterfactual_paths", group="explanations", loader=load_paths, kinds={"pytorch"})
def counterfactual_paths(config: ExperimentConfig, inputs: Inputs, log: RunLog) -> Computed:
    import torch

    from tabs_assets.science.explainers.explain import explain
    from tabs_assets.science.explainers.paths import draw_targets

    data = inputs["dataset"]
    classifier = inputs["classifier"].build()
    generative = None
    if "generative_model" in inputs:
        generative = inputs["generative_model"].build()
    features, _ = explained_rows(config, data)
    x = torch.from_numpy(features)
    with torch.no_grad():
        sources = classifier(x).argmax(dim=-1)
    targets = draw_targets(sources, data.n_classes, config.explanation.seed)
    log.info(
        f"explaining {len(x)} rows with {config.explainer.method} "
        f"in chunks of {config.explanation.chunk_size}"
    )
    paths = explain(
        x,
        targets,
        classifier,
        generative,
        config.explainer,
        config.loss,
        chunk_size=config.explanation.chunk_size,
        progress=lambda done, total: log.info(f"explained {done}/{total} rows"),
    )
    reached = (paths.predictions == paths.targets.unsqueeze(0)).any(dim=0)
    return Computed(
        payload=paths,
        metrics={
            "n_paths": int(paths.points.shape[1]),
            "points_per_path": int(paths.points.shape[0]),
            "explainer_seconds": float(paths.seconds),
            "validity_rate": float(reached.float().mean()),
        },
    )


@config_asset("explanation_metrics", group="explanations", loader=load_record, kinds={"pandas"})
def explanation_metrics(config: ExperimentConfig, inputs: Inputs, log: RunLog) -> Computed:
    import torch

    from tabs_assets.science.metrics import path_lof_scores, path_metrics, per_step_curves
    from tabs_assets.science.records import Record

    data = inputs["dataset"]
    paths = inputs["counterfactual_paths"]
    classifier = inputs["classifier"].build()
    reference = inputs["reference_density"].build()
    train_x, _ = data.split_arrays("train")
    train = torch.from_numpy(train_x)
    x_max = train.max(dim=0).values
    seed = config.dataset.split.seed
    lof = path_lof_scores(paths, train, config.metrics, seed)  # the costly part: once
    values = path_metrics(paths, reference, train, classifier, x_max, config.metrics, seed, lof=lof)
    curves = per_step_curves(paths, train, config.metrics, seed, lof=lof)
    table = markdown_table(["metric", "value"], [[k, v] for k, v in values.items()])
    return Computed(
        payload=Record(values, curves),
        metrics={k: float(v) for k, v in values.items()},
        tables={"explanation_metrics": table},
    )
