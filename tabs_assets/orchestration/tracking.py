"""MLflow tracking: one parent run per config partition, a child run per asset that did work.

A small resource of our own (dagster-mlflow knows one run per Dagster run, not partitions).
mlflow is imported only when something is logged, never at definitions load time. A tracking
failure never loses a result: the caller stores first and reports the failure.
"""

import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from filelock import FileLock
from pydantic import Field

from tabs_assets.config.loading import flatten
from tabs_assets.orchestration import settings

TAG_PREFIX = "tabs_assets."
ROLE_PARTITION = "partition"
ROLE_ASSET = "asset"
_BATCH = 200  # metrics per log_batch call, well under MLflow's 1000
_MAX_PARAM_LENGTH = 6000


@dataclass(frozen=True)
class AssetRun:
    """What an asset that did work reports to MLflow."""

    partition_key: str
    asset: str
    store_key: str
    dagster_run_id: str
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    history: Sequence[dict[str, float]] = ()
    artifacts: Sequence[Path] = ()


@dataclass(frozen=True)
class TrackingOutcome:
    run_id: str | None = None
    experiment_id: str | None = None
    url: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class GitState:
    commit: str
    dirty: bool
    diff: str


def git_state(directory: Path) -> GitState:
    """Commit, dirty flag and uncommitted diff of the checkout (``unknown`` outside git)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=directory, capture_output=True, text=True, check=True, timeout=30
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=no").strip()
        diff = git("diff", "HEAD") if status else ""
    except (OSError, subprocess.SubprocessError):
        return GitState("unknown", False, "")
    return GitState(commit, bool(status), diff)


class TrackingResource(ConfigurableResource):
    """Where runs go: SQLite in the store root by default, or a tracking server URL."""

    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; default $MLFLOW_TRACKING_URI, else "
        "sqlite:///<store root>/mlflow.db",
    )
    experiment_name: str = "tabs_assets"
    ui_url: str = Field(
        "http://127.0.0.1:5000", description="base URL of the MLflow UI, for links in Dagster"
    )
    enabled: bool = True
    store_root: str | None = Field(None, description="default: the store's default root")

    def resolved_uri(self) -> str:
        """Resource config, else $MLFLOW_TRACKING_URI, else SQLite in the store root."""
        if self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):
            return self.tracking_uri or os.environ["MLFLOW_TRACKING_URI"]
        root = Path(self.store_root) if self.store_root else settings.store_root()
        return f"sqlite:///{root / 'mlflow.db'}"

    def run_url(self, experiment_id: str, run_id: str) -> str:
        base = self.tracking_uri if self._is_server() else self.ui_url
        return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def _is_server(self) -> bool:
        return self.resolved_uri().startswith(("http://", "https://"))

    @contextmanager
    def _serialised(self) -> Iterator[None]:
        """SQLite stores lock under parallel writers: one writer at a time across processes."""
        uri = self.resolved_uri()
        if uri.startswith("sqlite:///"):
            db = Path(uri.removeprefix("sqlite:///"))
            db.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(db) + ".lock"):
                yield
        else:
            yield

    def _client(self) -> Any:
        # An unreachable server must fail fast, not retry for minutes.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.resolved_uri())

    def _experiment_id(self, client: Any) -> str:
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        location = None
        if not self._is_server():
            root = Path(self.resolved_uri().removeprefix("sqlite:///")).parent
            location = (root / "mlflow-artifacts").as_uri()
        return client.create_experiment(self.experiment_name, artifact_location=location)

    def _parent_run_id(self, client: Any, experiment_id: str, partition_key: str) -> str:
        runs = client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`{TAG_PREFIX}partition_key` = '{partition_key}' "
                f"and tags.`{TAG_PREFIX}role` = '{ROLE_PARTITION}'"
            ),
            max_results=1,
        )
        if runs:
            return runs[0].info.run_id
        run = client.create_run(
            experiment_id,
            run_name=partition_key,
            tags={f"{TAG_PREFIX}partition_key": partition_key, f"{TAG_PREFIX}role": ROLE_PARTITION},
        )
        client.set_terminated(run.info.run_id)
        return run.info.run_id

    def record(self, run: AssetRun) -> TrackingOutcome:
        """Log one asset's work; never raises (the failure is returned instead)."""
        if not self.enabled:
            return TrackingOutcome(error="tracking disabled")
        try:
            with self._serialised():
                return self._record(run)
        except Exception as error:  # any MLflow/network failure must not lose the result
            return TrackingOutcome(error=f"{type(error).__name__}: {error}")

    def _record(self, run: AssetRun) -> TrackingOutcome:
        from mlflow.entities import Metric, Param, RunTag

        client = self._client()
        experiment_id = self._experiment_id(client)
        parent_id = self._parent_run_id(client, experiment_id, run.partition_key)
        git = git_state(settings.project_root())
        tags = {
            "mlflow.parentRunId": parent_id,
            f"{TAG_PREFIX}partition_key": run.partition_key,
            f"{TAG_PREFIX}role": ROLE_ASSET,
            f"{TAG_PREFIX}asset": run.asset,
            f"{TAG_PREFIX}store_key": run.store_key,
            f"{TAG_PREFIX}dagster_run_id": run.dagster_run_id,
            f"{TAG_PREFIX}git_commit": git.commit,
            f"{TAG_PREFIX}git_dirty": str(git.dirty).lower(),
        }
        child = client.create_run(experiment_id, run_name=run.asset, tags=tags)
        run_id = child.info.run_id
        now = int(time.time() * 1000)
        params = [
            Param(key, str(value)[:_MAX_PARAM_LENGTH]) for key, value in flatten(run.params).items()
        ]
        metrics = [
            Metric(name, float(value), now, int(row.get("epoch", step)))
            for step, row in enumerate(run.history)
            for name, value in row.items()
            if name != "epoch"
        ] + [Metric(name, float(value), now, 0) for name, value in run.metrics.items()]
        for start in range(0, len(params), 100):
            client.log_batch(run_id, params=params[start : start + 100])
        for start in range(0, len(metrics), _BATCH):
            client.log_batch(run_id, metrics=metrics[start : start + _BATCH])
        for artifact in run.artifacts:
            client.log_artifact(run_id, str(artifact))
        if git.dirty:
            client.log_text(run_id, git.diff, "git/uncommitted.diff")
        client.set_terminated(run_id)
        client.log_batch(run_id, tags=[RunTag(f"{TAG_PREFIX}complete", "true")])
        return TrackingOutcome(
            run_id=run_id, experiment_id=experiment_id, url=self.run_url(experiment_id, run_id)
        )
