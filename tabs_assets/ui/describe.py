"""Configs, runs and metrics in words: what the UIs and the terminal say about a result.

Pure helpers (no mlflow, no torch, no Dagster), shared by the Dagster metadata, the MLflow runs
and the command line."""

import math
from typing import Any


def round_sig(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits (non-finite values unchanged)."""
    if not math.isfinite(value) or value == 0:
        return value
    return float(f"{value:.{digits}g}")


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


# metric name -> (meaning, unit). Names not listed are shown with an empty meaning.
METRIC_MEANINGS: dict[str, tuple[str, str]] = {
    "n_rows": ("rows in the data set (all splits)", "rows"),
    "n_features": ("input width after one-hot encoding", "columns"),
    "n_classes": ("number of classes", ""),
    "n_train": ("rows in the training split", "rows"),
    "n_validation": ("rows in the validation split", "rows"),
    "n_val": ("rows in the validation split", "rows"),
    "n_test": ("rows in the test split", "rows"),
    "test_accuracy": ("accuracy on the test split", "fraction"),
    "test_nll": ("mean negative log-likelihood on the test split", "nats"),
    "test_loss": ("training loss on the test split", ""),
    "best_epoch": ("epoch whose weights were kept (best validation loss)", "epoch"),
    "epochs": ("epochs trained", "epochs"),
    "n_paths": ("counterfactual paths computed", "paths"),
    "n_valid": ("paths that reach their target class", "paths"),
    "points_per_path": ("points on each path (steps + start)", "points"),
    "explainer_seconds": ("wall time of the explainer", "s"),
    "validity_rate": ("share of paths reaching the target class at some step", "fraction"),
    "validity_rate_last": ("share of paths in the target class at the last step", "fraction"),
    "time_per_step_ns": ("explainer time per path point", "ns"),
    "mean_nll": ("mean NLL of path points under the reference density (lower: on data)", "nats"),
    "mean_boundary_crossings": ("class changes along a valid path", "crossings"),
    "mean_distance_to_max": ("distance of the counterfactual to the training max point", "L2"),
    "l1_auc": ("area under the L1-distance-to-input curve (lower: closer)", "L1 x step"),
    "sparsity_l0": ("features changed by the last point", "features"),
    "lof_auc": ("area under the LOF outlier-score curve (lower: more typical)", "LOF x step"),
    "ynn": ("share of a counterfactual's neighbours predicted as the target (higher: better)", ""),
    "figures": ("figures drawn", "figures"),
    "compute_seconds": ("wall time of the computation that made this entry", "s"),
}


def metric_meaning(name: str) -> tuple[str, str]:
    if name in METRIC_MEANINGS:
        return METRIC_MEANINGS[name]
    if name.startswith("cf_"):
        return ("counterfactual quality metric (see SCIENCE.md)", "")
    return ("", "")


def markdown_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def metrics_markdown(metrics: dict[str, Any]) -> str:
    """A Markdown table: metric, value (4 significant digits), meaning, unit."""
    rows = ["| metric | value | meaning | unit |", "|---|---:|---|---|"]
    for name, value in metrics.items():
        meaning, unit = metric_meaning(name)
        rows.append(f"| {name} | {format_value(value)} | {markdown_escape(meaning)} | {unit} |")
    return "\n".join(rows)


def _section_words(section: Any, kind_fields: tuple[str, ...] = ("kind", "method")) -> str:
    """``kind (a=1, b=2)`` from a pydantic section: its kind and the values set explicitly."""
    data = section.model_dump(mode="json") if hasattr(section, "model_dump") else dict(section)
    kind = next((str(data[f]) for f in kind_fields if f in data), "")
    explicit = getattr(section, "model_fields_set", set(data))
    details = [
        f"{name}={format_value(data[name])}"
        for name in sorted(explicit)
        if name in data and name not in kind_fields and not isinstance(data[name], dict)
    ][:6]
    if not kind:  # a section of one kind (the classifier): its values alone
        return ", ".join(details) or "default"
    return f"{kind} ({', '.join(details)})" if details else kind


def seeds_in_words(config: Any) -> str:
    """Every seed of a config: ``dataset.seed=42, ..., generative_model.training.seed=3``."""
    from tabs_assets.config.loading import flatten

    flat = flatten(config.model_dump(mode="json"))
    return ", ".join(f"{key}={value}" for key, value in flat.items() if key.endswith("seed"))


def config_in_words(config: Any) -> dict[str, str]:
    """dataset, models, explainer, loss, seeds and description of an ExperimentConfig, for
    people: two configs that differ in anything that changes a result read differently."""
    words = {
        "dataset": _section_words(config.dataset),
        "classifier": _section_words(config.classifier),
        "generative_model": _section_words(config.generative_model),
        "explainer": _section_words(config.explainer),
        "loss": _section_words(config.loss),
        "seeds": seeds_in_words(config),
    }
    if getattr(config, "description", ""):
        words["description"] = str(config.description)
    return words


def config_summary_line(config: Any) -> str:
    """One line: ``cake_on_sea · nice · latent_shift · general/logit``."""
    words = config_in_words(config)
    return " · ".join(
        words[name].split(" (")[0] for name in ("dataset", "generative_model", "explainer", "loss")
    )


def run_name(config: Any, member_labels: dict[str, Any] | None) -> str:
    """A config's MLflow parent run name: what sets it apart, readable in the runs table.

    A study member: ``<study> · <sweep values> · seed=<seed>`` (``validity_losses · sklearn:wine
    · revise · seed=3``); any other config: ``<name> · <dataset · model · explainer · loss>``
    by their report labels (``quickstart · cake_on_sea · nice · latent_shift · logit/source``).
    """
    from tabs_assets.config.study import member_words

    if member_labels:
        return " · ".join([config.name, *member_words(config, member_labels)])
    sections = (config.dataset, config.generative_model, config.explainer, config.loss)
    return " · ".join([config.name, *(section.label for section in sections)])


def study_run_name(study_name: str, members: int) -> str:
    return f"{study_name} · study of {members} members"


def epoch_progress(log: Any, asset: str, max_epochs: int | None = None) -> Any:
    """An ``on_epoch_end`` callback: ``classifier epoch 3 of 200 (12.4 s so far): loss=...``.

    Declared result-neutral (graph/nodes.py RESULT_NEUTRAL): its wording is in no cache key.
    """
    import time

    started = time.perf_counter()

    def log_epoch(row: dict) -> None:
        epoch = row.get("epoch")
        number = int(epoch) + 1 if isinstance(epoch, (int, float)) else epoch
        of = f" of {max_epochs}" if max_epochs else ""
        values = ", ".join(f"{k}={format_value(float(v))}" for k, v in row.items() if k != "epoch")
        elapsed = time.perf_counter() - started
        log.info(f"{asset} epoch {number}{of} ({elapsed:.1f} s so far): {values}")

    return log_epoch
