"""An asset materialization's Dagster metadata: the config in words, rounded metrics with their
meaning, small previews and today's links."""

import math
from typing import Any

from tabs_assets.ui.describe import metrics_markdown, round_sig
from tabs_assets.ui.links import stored_mlflow_url
from tabs_assets.ui.previews import previews_markdown


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
