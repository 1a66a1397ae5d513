"""Links between the two UIs that follow today's settings: a link written for a cache hit
points at the UIs of today, not at those of the day the entry was computed."""

import os
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
