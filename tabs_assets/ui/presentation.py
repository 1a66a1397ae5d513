"""What the UIs show: links that follow today's settings, configs in words, metrics with meaning.

Pure helpers (no mlflow, no torch) shared by the Dagster metadata and the MLflow runs. Base URLs
come from environment variables read when a link is built, so links written for a cache hit
point at the UIs of today, not at those of the day the entry was computed.
"""

import math
import os
from collections.abc import Collection
from typing import Any
from urllib.parse import quote

from tabs_assets import settings

DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"


def mlflow_ui_url() -> str:
    """$TABS_ASSETS_MLFLOW_UI_URL, else an http(s) $MLFLOW_TRACKING_URI, else port 5000."""
    tracking = os.environ.get("MLFLOW_TRACKING_URI", "")
    default = tracking if tracking.startswith(("http://", "https://")) else DEFAULT_MLFLOW_UI
    return settings.mlflow_ui_url() or default.rstrip("/")


def dagster_ui_url() -> str:
    return settings.dagster_ui_url()


# MLflow 3's UI opens an experiment's pages in its GenAI layout (traces, sessions) unless the
# URL or the browser's last choice says otherwise: ``workflowType`` in the hash route's query
# (read by the UI's WorkflowTypeProvider, mlflow/server/js) selects the model-training layout
# with the runs table, for every reader of the link.
MLFLOW_TRAINING_VIEW = "workflowType=machine_learning"
STUDY_PAGE_ASSET = "study_report"
"""A study partition's page in Dagster: the last asset of its chain (table, report)."""
CONFIG_PAGE_ASSET = "explanation_metrics"
"""A config partition's page in Dagster: the asset whose metrics its parent run carries."""


def mlflow_run_url(experiment_id: str, run_id: str, ui_url: str | None = None) -> str:
    """A run's page in the MLflow UI (model-training layout), at ``ui_url`` or today's."""
    base = (ui_url or mlflow_ui_url()).rstrip("/")
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{MLFLOW_TRAINING_VIEW}"


def dagster_run_url(run_id: str) -> str:
    return f"{dagster_ui_url()}/runs/{run_id}"


def dagster_asset_url(asset: str, partition_key: str) -> str:
    """The asset's page in Dagster, opened on one partition."""
    return (
        f"{dagster_ui_url()}/assets/{quote(asset)}?view=partitions"
        f"&partition={quote(partition_key, safe='')}"
    )


def dagster_partition_url(partition_key: str, is_study: bool) -> str:
    """The Dagster page of a partition as a whole (what its MLflow parent run links to)."""
    return dagster_asset_url(STUDY_PAGE_ASSET if is_study else CONFIG_PAGE_ASSET, partition_key)


def stored_mlflow_url(manifest: dict[str, Any]) -> str | None:
    """The MLflow link of a store entry, built now from its run and experiment ids."""
    run_id = manifest.get("mlflow_run_id")
    experiment_id = manifest.get("mlflow_experiment_id")
    if run_id and not experiment_id and "/experiments/" in str(manifest.get("mlflow_url", "")):
        experiment_id = str(manifest["mlflow_url"]).split("/experiments/")[1].split("/")[0]
    if run_id and experiment_id:
        return mlflow_run_url(str(experiment_id), str(run_id))
    return manifest.get("mlflow_url")


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


# ---- Dagster metadata ----------------------------------------------------------------------

THUMBNAIL_WIDTH = 420  # px: readable in the metadata panel
THUMBNAILS = 2  # images embedded per materialization; the rest are listed with their paths
PREVIEW_BUDGET_BYTES = 60_000  # cap on embedded images per materialization (event-log size)
PREVIEW_DIR = "previews"


def _full_size(entry_path: Any, name: str) -> Any:
    """The full-size file behind a preview name (``previews/x.png`` -> ``x.png``)."""
    from pathlib import Path

    path = Path(entry_path) / name
    if path.parent.name == PREVIEW_DIR and (path.parent.parent / path.name).is_file():
        return path.parent.parent / path.name
    return path


def thumbnail_png(path: Any, width: int = THUMBNAIL_WIDTH) -> bytes:
    """A small palette PNG of a figure, made from the full-size file (crisp, not 40 dpi)."""
    import io

    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.width > width:
            image = image.resize(
                (width, max(1, round(image.height * width / image.width))), Image.LANCZOS
            )
        image = image.quantize(colors=96, method=Image.Quantize.MEDIANCUT)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()


def thumbnail_name(name: str) -> str:
    """Where a figure's thumbnail is stored in its entry (``x.png`` -> ``previews/x.png``)."""
    return f"{PREVIEW_DIR}/{name}"


def write_thumbnails(directory: Any, names: list[str]) -> list[str]:
    """Thumbnails of the figures ``names`` of an entry being written, stored beside them so a
    cache hit embeds them without drawing; returns the figures that have one."""
    from pathlib import Path

    made = []
    for name in names:
        try:
            data = thumbnail_png(Path(directory) / name)
        except Exception:  # not an image PIL reads: listed by path only
            continue
        target = Path(directory) / thumbnail_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        made.append(name)
    return made


def previews_markdown(
    entry_path: Any, names: list[str], stored: Collection[str] | None = None
) -> str:
    """At most THUMBNAILS embedded thumbnails within the byte budget, then every file's path.

    ``stored``: the figures whose thumbnails the entry holds (``previews/<name>``); None for an
    entry made before thumbnails were stored: they are drawn from the full-size files.
    """
    import base64
    from pathlib import Path

    parts, used = [], 0
    listed = []
    for name in names:
        full = _full_size(entry_path, name)
        embedded = False
        if len(parts) < THUMBNAILS:
            try:
                if stored is None:
                    data = thumbnail_png(full)
                else:
                    thumbnail = Path(entry_path) / thumbnail_name(name)
                    data = thumbnail.read_bytes() if name in stored else b""
            except Exception:  # not an image PIL reads: list it only
                data = b""
            if data and used + len(data) * 4 // 3 <= PREVIEW_BUDGET_BYTES:
                encoded = base64.b64encode(data).decode("ascii")
                parts.append(f"**{full.name}**\n\n![{full.name}](data:image/png;base64,{encoded})")
                used += len(encoded)
                embedded = True
        if not embedded:
            listed.append(f"- `{full}`")
    if listed:
        parts.append(
            "Full-size files (also in the MLflow run's artifacts):\n\n" + "\n".join(listed)
        )
    return "\n\n".join(parts)


def dagster_metadata(
    entry: Any, status: str, error: str | None, words: dict[str, str]
) -> dict[str, Any]:
    """An asset materialization's metadata: the config in words, rounded metrics with their
    meaning, small previews and today's links."""
    from dagster import MetadataValue

    manifest = entry.manifest
    report = manifest.get("report", {})
    metadata: dict[str, Any] = {"cache": status}
    metadata.update({f"config.{name}": MetadataValue.text(text) for name, text in words.items()})
    metadata.update(
        {
            "store_key": entry.key,
            "store_path": MetadataValue.path(str(entry.path)),
            "code_version": manifest.get("code_version", ""),
            "compute_seconds": MetadataValue.float(
                round_sig(float(manifest.get("compute_seconds", 0.0)))
            ),
            "size_bytes": entry.size_bytes,
        }
    )
    metrics = report.get("metrics", {})
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            metadata[name] = MetadataValue.text(str(value))
        elif isinstance(value, int):
            metadata[name] = MetadataValue.int(value)
        elif not math.isfinite(value):
            metadata[name] = MetadataValue.text(str(value))
        else:
            metadata[name] = MetadataValue.float(round_sig(value))
    if metrics:
        metadata["metrics (meaning, unit)"] = MetadataValue.md(metrics_markdown(metrics))
    for name, table in report.get("tables", {}).items():
        metadata[name] = MetadataValue.md(table)
    if report.get("previews"):
        markdown = previews_markdown(entry.path, report["previews"], report.get("thumbnails"))
        metadata["previews"] = MetadataValue.md(markdown)
    url = stored_mlflow_url(manifest)
    if url:
        metadata["mlflow_run"] = MetadataValue.url(url)
    if error:
        metadata["mlflow_error"] = error
    return metadata


def metadata_size(metadata: dict[str, Any]) -> int:
    """Bytes the metadata takes in the event log (Dagster's own serialisation)."""
    from dagster._serdes import serialize_value

    return len(serialize_value(metadata).encode())


def epoch_progress(log: Any, asset: str, max_epochs: int | None = None) -> Any:
    """An ``on_epoch_end`` callback: ``classifier epoch 3 of 200 (12.4 s so far): loss=...``.

    Lives here, outside the model assets' sources, so wording changes leave cache keys alone.
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
