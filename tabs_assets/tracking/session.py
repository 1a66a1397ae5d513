"""Where runs go, and the connection to it: one MLflow client and experiment per tracking URI
and process, SQLite in WAL mode, and one writer at a time on a SQLite store."""

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabs_assets import settings
from tabs_assets.locks import HeldLock, LockBusy
from tabs_assets.ui import links

DEFAULT_EXPERIMENT = "tabs_assets"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # MLflow 3: opens the model-training view
EXPERIMENT_KIND = "custom_model_development"  # (not "genai_development")


@dataclass(frozen=True)
class TrackingSettings:
    """Where runs go: SQLite in the store root by default, or a tracking server URL.

    Unset values are read from the environment each time they are used, so a setting exported
    after the definitions loaded still applies.
    """

    tracking_uri: str | None = None  # default $MLFLOW_TRACKING_URI, else the store's mlflow.db
    experiment_name: str = DEFAULT_EXPERIMENT
    ui_url: str | None = None  # default $TABS_ASSETS_MLFLOW_UI_URL, else the server, else local
    enabled: bool = True
    store_root: str | None = None  # default: the store's default root

    def resolved_uri(self) -> str:
        """Configured, else $MLFLOW_TRACKING_URI, else SQLite in the store root."""
        if self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):
            return self.tracking_uri or os.environ["MLFLOW_TRACKING_URI"]
        return f"sqlite:///{self.resolved_store_root() / 'mlflow.db'}"

    def resolved_store_root(self) -> Path:
        return Path(self.store_root) if self.store_root else settings.store_root()

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """The run's page: at ``ui_url``, else $TABS_ASSETS_MLFLOW_UI_URL, else the server."""
        ui_url = self.ui_url
        if not ui_url and self.is_server() and not settings.mlflow_ui_url():
            ui_url = self.resolved_uri()
        return links.mlflow_run_url(experiment_id, run_id, ui_url)

    def is_server(self) -> bool:
        return self.resolved_uri().startswith(("http://", "https://"))

    def lock_path(self) -> Path | None:
        """The writer lock beside a SQLite store (None for a server: it serialises itself)."""
        uri = self.resolved_uri()
        if not uri.startswith("sqlite:///"):
            return None
        return Path(uri.removeprefix("sqlite:///") + ".lock")


class TrackingLockTimeout(RuntimeError):
    """The SQLite tracking lock stayed held longer than the timeout."""


@contextmanager
def serialised(tracking: TrackingSettings) -> Iterator[None]:
    """SQLite stores lock under parallel writers: one writer at a time across processes.

    Waits at most $TABS_ASSETS_MLFLOW_LOCK_TIMEOUT seconds, then raises TrackingLockTimeout
    naming the lock and the process that holds it (tabs_assets.locks).
    """
    path = tracking.lock_path()
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with HeldLock(path).held(settings.mlflow_lock_timeout_s()):
            yield
    except LockBusy as busy:
        raise TrackingLockTimeout(
            f"MLflow lock {path} still held after {busy.waited_s:g} s (held by "
            f"{busy.holder}); this result is tracked the next time it is read "
            f"(${settings.MLFLOW_LOCK_TIMEOUT_ENV} sets the wait)"
        ) from None


@dataclass
class ParentState:
    """What this process last wrote to (or read of) a partition's parent run."""

    run_id: str
    params: set[str]
    tags: dict[str, str]
    compute_seconds: dict[str, float]


@dataclass
class Session:
    """One MLflow client and experiment per tracking URI and process: creating a client and
    looking the experiment up cost more than logging a run."""

    client: Any
    experiment_id: str
    parents: dict[str, ParentState] = field(default_factory=dict)


_SESSIONS: dict[tuple[str, str], Session] = {}


def session_for(tracking: TrackingSettings) -> Session:
    address = (tracking.resolved_uri(), tracking.experiment_name)
    if address not in _SESSIONS:
        client = _client(tracking.resolved_uri())
        _SESSIONS[address] = Session(client, ensure_experiment(client, tracking))
        _use_write_ahead_log(tracking)
    return _SESSIONS[address]


def forget_session(tracking: TrackingSettings) -> None:
    """After a failure: the database may have been replaced; start afresh next time."""
    _SESSIONS.pop((tracking.resolved_uri(), tracking.experiment_name), None)


def _use_write_ahead_log(tracking: TrackingSettings) -> None:
    """SQLite in WAL mode: a commit appends to one log instead of rewriting a journal
    (about 20 % less per logged run), and `mlflow ui` reads while runs are written. The
    mode is kept in the database file. (WAL needs a local disk, as SQLite's locking does.)"""
    lock = tracking.lock_path()
    if lock is None:
        return
    with suppress(sqlite3.Error), closing(sqlite3.connect(lock.with_suffix(""))) as db:
        db.execute("PRAGMA journal_mode=WAL")


def _client(uri: str) -> Any:
    # An unreachable server must fail fast, not retry for minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(client: Any, tracking: TrackingSettings) -> str:
    """The experiment's id; created (artifacts beside a SQLite store) and tagged as model
    development where needed."""
    experiment = client.get_experiment_by_name(tracking.experiment_name)
    if experiment is None:
        location = None
        if not tracking.is_server():
            root = Path(tracking.resolved_uri().removeprefix("sqlite:///")).parent
            location = (root / "mlflow-artifacts").as_uri()
        return client.create_experiment(
            tracking.experiment_name,
            artifact_location=location,
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id
