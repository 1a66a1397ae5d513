"""MLflow tracking: one parent run per config partition, a child run per asset that did work.

A small resource of our own (dagster-mlflow knows one run per Dagster run, not partitions).
mlflow is imported only when something is logged, never at definitions load time. A tracking
failure never loses a result: the caller stores first and reports the failure.

Parent runs are the comparison table: each carries the whole flattened config as params (batch
sizes as used), the headline metrics of its children, its studies as tags and links to Dagster.
Child runs start when the compute started and end when it was logged. Writes to a SQLite store
are serialised by a file lock that is given up after ``$TABS_ASSETS_MLFLOW_LOCK_TIMEOUT`` seconds
(default 30): the run then goes on untracked, and the entry is tracked the next time it is read
(``ensure_tracked``), as is any entry whose MLflow run went missing.
"""

import json
import os
import sqlite3
import subprocess
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from dagster import ConfigurableResource
from pydantic import Field

from tabs_assets import settings
from tabs_assets.config.loading import flatten
from tabs_assets.locks import HeldLock, LockBusy
from tabs_assets.ui import describe, links

# A store folder matches MLflow's local-artifact dataset source twice over; it says so on every
# run. Filtered by message, process-wide: catch_warnings is not safe on the tracking thread.
warnings.filterwarnings(
    "ignore",
    message="The specified dataset source can be interpreted in multiple ways",
    category=UserWarning,
)

TAG_PREFIX = "tabs_assets."
ROLE_PARTITION = "partition"
ROLE_ASSET = "asset"
STUDY_TAG = f"{TAG_PREFIX}study"
DAGSTER_RUN_TAG = f"{TAG_PREFIX}dagster_run_url"
DAGSTER_ASSET_TAG = f"{TAG_PREFIX}dagster_asset_url"
RUN_NAME_TAG = "mlflow.runName"  # MLflow's own: setting it renames an existing run
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # MLflow 3: opens the model-training view
EXPERIMENT_KIND = "custom_model_development"  # (not "genai_development")
LOCK_TIMEOUT_ENV = settings.MLFLOW_LOCK_TIMEOUT_ENV
STALE_RUNNING_SECONDS = 3600  # a tracking server's RUNNING child older than this is dead
_MAX_PARAM_LENGTH = 6000
MANIFEST = "manifest.json"
PREVIEW_DIR = "previews"  # small copies for Dagster; MLflow gets the full-size files only
# Parent-run metrics taken from children: (asset, metric) -> name on the parent run.
_MODEL_HEADLINES = ("test_accuracy", "test_nll", "best_epoch")
_PATH_HEADLINES = ("explainer_seconds",)


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
    # Real times of the work (epoch seconds); default: read from the entry's manifest.
    compute_seconds: float | None = None
    started: float | None = None
    ended: float | None = None
    late: bool = False  # tracked when read, after a crash or a lock timeout
    # asset -> metrics of the upstream entries the result builds on (for a new parent run)
    upstream_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)


class Tracker(Protocol):
    """What the cached path asks of tracking: the resource, or a study step's queue."""

    def record(self, run: "AssetRun") -> "TrackingOutcome": ...

    def ensure_tracked(
        self, store: Any, entry: Any, partition_key: str, asset: str, dagster_run_id: str
    ) -> tuple[Any, "TrackingOutcome | None"]: ...

    def resolved_uri(self) -> str: ...


@dataclass(frozen=True)
class TrackingOutcome:
    run_id: str | None = None
    experiment_id: str | None = None
    url: str | None = None
    error: str | None = None
    pending: bool = False  # queued for a tracking thread (study steps), not logged yet


class TrackingLockTimeout(RuntimeError):
    """The SQLite tracking lock stayed held longer than the timeout."""


@dataclass(frozen=True)
class GitState:
    commit: str
    dirty: bool
    diff: str


GIT_STATE_TTL_S = 30.0  # a study logs hundreds of runs: ask git once per half minute
_GIT_STATES: dict[Path, tuple[float, GitState]] = {}


def git_state(directory: Path) -> GitState:
    """Commit, dirty flag and uncommitted diff of the checkout, read at most every
    ``GIT_STATE_TTL_S`` seconds per process."""
    cached = _GIT_STATES.get(directory)
    if cached is not None and time.monotonic() - cached[0] < GIT_STATE_TTL_S:
        return cached[1]
    state = _read_git_state(directory)
    _GIT_STATES[directory] = (time.monotonic(), state)
    return state


def _read_git_state(directory: Path) -> GitState:
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


def log_all(
    client: Any,
    run_id: str,
    params: Sequence[Any] = (),
    metrics: Sequence[Any] = (),
    tags: Sequence[Any] = (),
) -> None:
    """Params, metrics and tags in as few ``log_batch`` calls as MLflow's limits allow
    (100 params, 100 tags, 1000 values per call): each call is a database transaction."""
    params, metrics, tags = list(params), list(metrics), list(tags)
    while params or metrics or tags:
        batch_params, params = params[:100], params[100:]
        batch_tags, tags = tags[:100], tags[100:]
        room = 1000 - len(batch_params) - len(batch_tags)
        batch_metrics, metrics = metrics[:room], metrics[room:]
        client.log_batch(run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags)


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


def lock_timeout() -> float:
    """Seconds to wait for the SQLite tracking lock ($TABS_ASSETS_MLFLOW_LOCK_TIMEOUT, 30)."""
    return settings.mlflow_lock_timeout_s()


def _manifest_of(artifacts: Sequence[Path]) -> tuple[Path | None, dict[str, Any]]:
    """(entry folder, manifest) when the artifacts are a store entry's files."""
    for path in artifacts:
        if path.name == MANIFEST:
            try:
                return path.parent, json.loads(path.read_text())
            except (OSError, ValueError):
                return path.parent, {}
    return None, {}


def _compute_seconds(run: AssetRun) -> float:
    """The run's compute time: given, else the one its entry's manifest records."""
    if run.compute_seconds is not None:
        return run.compute_seconds
    return float(_manifest_of(run.artifacts)[1].get("compute_seconds") or 0.0)


def _created_epoch(manifest: dict[str, Any]) -> float | None:
    try:
        return datetime.strptime(manifest["created"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def parent_headlines(asset: str, metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics of an asset's run that its config's parent run shows."""
    numbers = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    if asset == "explanation_metrics":
        return numbers
    if asset in {"classifier", "generative_model", "reference_density"}:
        return {f"{asset}_{k}": v for k, v in numbers.items() if k in _MODEL_HEADLINES}
    if asset == "counterfactual_paths":
        return {k: v for k, v in numbers.items() if k in _PATH_HEADLINES}
    return {}


class TrackingResource(ConfigurableResource):
    """Where runs go: SQLite in the store root by default, or a tracking server URL."""

    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; default $MLFLOW_TRACKING_URI, else "
        "sqlite:///<store root>/mlflow.db",
    )
    experiment_name: str = "tabs_assets"
    ui_url: str | None = Field(
        None,
        description="base URL of the MLflow UI for links; default $TABS_ASSETS_MLFLOW_UI_URL, "
        "else the tracking server, else http://127.0.0.1:5000",
    )
    enabled: bool = True
    store_root: str | None = Field(None, description="default: the store's default root")

    def resolved_uri(self) -> str:
        """Resource config, else $MLFLOW_TRACKING_URI, else SQLite in the store root."""
        if self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):
            return self.tracking_uri or os.environ["MLFLOW_TRACKING_URI"]
        return f"sqlite:///{self._store_root() / 'mlflow.db'}"

    def _store_root(self) -> Path:
        return Path(self.store_root) if self.store_root else settings.store_root()

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """The run's page: at ``ui_url``, else $TABS_ASSETS_MLFLOW_UI_URL, else the server."""
        ui_url = self.ui_url
        if not ui_url and self._is_server() and not settings.mlflow_ui_url():
            ui_url = self.resolved_uri()
        return links.mlflow_run_url(experiment_id, run_id, ui_url)

    def _is_server(self) -> bool:
        return self.resolved_uri().startswith(("http://", "https://"))

    def _lock_path(self) -> Path | None:
        uri = self.resolved_uri()
        if not uri.startswith("sqlite:///"):
            return None
        return Path(uri.removeprefix("sqlite:///") + ".lock")

    @contextmanager
    def _serialised(self) -> Iterator[None]:
        """SQLite stores lock under parallel writers: one writer at a time across processes.

        Waits at most ``lock_timeout()`` seconds, then raises TrackingLockTimeout naming the
        lock and the process that holds it (tabs_assets.locks).
        """
        path = self._lock_path()
        if path is None:
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with HeldLock(path).held(lock_timeout()):
                yield
        except LockBusy as busy:
            raise TrackingLockTimeout(
                f"MLflow lock {path} still held after {busy.waited_s:g} s (held by "
                f"{busy.holder}); this result is tracked the next time it is read "
                f"(${LOCK_TIMEOUT_ENV} sets the wait)"
            ) from None

    def _session(self) -> Session:
        address = (self.resolved_uri(), self.experiment_name)
        if address not in _SESSIONS:
            client = self._client()
            _SESSIONS[address] = Session(client, self._experiment_id(client))
            self._use_write_ahead_log()
        return _SESSIONS[address]

    def _use_write_ahead_log(self) -> None:
        """SQLite in WAL mode: a commit appends to one log instead of rewriting a journal
        (about 20 % less per logged run), and `mlflow ui` reads while runs are written. The
        mode is kept in the database file. (WAL needs a local disk, as SQLite's locking does.)"""
        lock = self._lock_path()
        if lock is None:
            return
        with suppress(sqlite3.Error), closing(sqlite3.connect(lock.with_suffix(""))) as db:
            db.execute("PRAGMA journal_mode=WAL")

    def _forget_session(self) -> None:
        """After a failure: the database may have been replaced; start afresh next time."""
        _SESSIONS.pop((self.resolved_uri(), self.experiment_name), None)

    def _client(self) -> Any:
        # An unreachable server must fail fast, not retry for minutes.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.resolved_uri())

    def _experiment_id(self, client: Any) -> str:
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            location = None
            if not self._is_server():
                root = Path(self.resolved_uri().removeprefix("sqlite:///")).parent
                location = (root / "mlflow-artifacts").as_uri()
            experiment_id = client.create_experiment(
                self.experiment_name,
                artifact_location=location,
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
            return experiment_id
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            client.set_experiment_tag(
                experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
            )
        return experiment.experiment_id

    # ---- what the registry knows about a partition -------------------------------------

    def _registry(self) -> Any:
        from tabs_assets.registry.records import Registry

        return Registry(self._store_root())

    def _config(self, partition_key: str) -> Any | None:
        try:
            return self._registry().config(partition_key)
        except Exception:  # a study partition, or a broken record: no config params
            return None

    def _n_train(self, config: Any) -> int | None:
        from tabs_assets.graph.nodes import entry_address

        folder, key = entry_address("dataset", config)
        try:
            manifest = json.loads((self._store_root() / folder / key / MANIFEST).read_text())
            return int(manifest["report"]["metrics"]["n_train"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _resolved_batch_sizes(self, params: dict[str, Any], n_train: int | None) -> dict[str, Any]:
        """``*.batch_size: None`` -> the size training used (science.models.data)."""
        out = dict(params)
        for key, value in params.items():
            if key.endswith("batch_size") and value is None:
                if n_train is None:
                    del out[key]  # logged once known: MLflow params cannot change
                else:
                    from tabs_assets.config.models import resolve_batch_size

                    out[key] = resolve_batch_size(n_train, None)
        return out

    def _studies(self, partition_key: str) -> list[str]:
        registry = self._registry()
        names = []
        for key in registry.study_keys():
            try:
                record = registry.study(key)
            except Exception:
                continue
            if partition_key in record.member_keys:
                names.append(record.study.name)
        return sorted(set(names))

    # ---- parent runs ---------------------------------------------------------------------

    def _find_parent(self, client: Any, experiment_id: str, partition_key: str) -> Any | None:
        runs = client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`{TAG_PREFIX}partition_key` = '{partition_key}' "
                f"and tags.`{TAG_PREFIX}role` = '{ROLE_PARTITION}'"
            ),
            max_results=1,
        )
        return runs[0] if runs else None

    def _log_dataset(self, client: Any, run_id: str, config: Any) -> None:
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        from tabs_assets.graph.nodes import entry_address

        folder, key = entry_address("dataset", config)
        source = resolve_dataset_source(str(self._store_root() / folder / key))
        name = describe.config_in_words(config)["dataset"].split(" (")[0]
        dataset = MetaDataset(source=source, name=name, digest=key)
        client.log_inputs(
            run_id,
            datasets=[
                DatasetInput(
                    dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "train")]
                )
            ],
        )

    def _study_record(self, partition_key: str) -> Any | None:
        try:
            return self._registry().study(partition_key)
        except Exception:  # not a study, or a broken record
            return None

    def _partition_tags(self, partition_key: str, config: Any, git: GitState) -> dict[str, str]:
        study = self._study_record(partition_key) if config is None else None
        page = links.dagster_partition_url(partition_key, is_study=study is not None)
        tags = {
            f"{TAG_PREFIX}partition_key": partition_key,
            f"{TAG_PREFIX}role": ROLE_PARTITION,
            "mlflow.source.git.commit": git.commit,
            "mlflow.source.type": "JOB",
            DAGSTER_ASSET_TAG: page,
        }
        if study is not None:
            tags[RUN_NAME_TAG] = describe.study_run_name(study.study.name, len(study.members))
        if config is not None:
            words = describe.config_in_words(config)
            record = self._registry().config_record(partition_key)
            labels = record.get("labels")
            tags[RUN_NAME_TAG] = describe.run_name(
                config, labels if isinstance(labels, dict) else None
            )
            tags["mlflow.source.name"] = str(record.get("source", "tabs_assets"))
            tags[f"{TAG_PREFIX}summary"] = describe.config_summary_line(config)
            lines = [f"**{config.description}**" if config.description else f"**{partition_key}**"]
            lines += [
                f"- {name}: {value}" for name, value in words.items() if name != "description"
            ]
            lines.append(f"- Dagster: [{partition_key}]({page})")
            tags["mlflow.note.content"] = "\n".join(lines)
        studies = self._studies(partition_key)
        if studies:
            tags[STUDY_TAG] = ",".join(studies)
            tags.update({f"{STUDY_TAG}.{name}": "true" for name in studies})
        return tags

    def _parent_state(self, session: Session, partition_key: str) -> ParentState | None:
        """The partition's parent run, as this process knows it, else as MLflow has it."""
        if partition_key in session.parents:
            return session.parents[partition_key]
        parent = self._find_parent(session.client, session.experiment_id, partition_key)
        if parent is None:
            return None
        state = ParentState(
            parent.info.run_id,
            set(parent.data.params),
            dict(parent.data.tags),
            {
                k.removesuffix("_compute_seconds"): v
                for k, v in parent.data.metrics.items()
                if k.endswith("_compute_seconds")
            },
        )
        session.parents[partition_key] = state
        return state

    def _update_parent(
        self,
        session: Session,
        partition_key: str,
        results: dict[str, tuple[dict[str, Any], float | None]],
        started_ms: int,
        dagster_run_id: str | None,
        git: GitState,
        upstream_metrics: dict[str, dict[str, Any]] | None = None,
        folded: Sequence["AssetRun"] = (),
    ) -> str:
        """Create or refresh the partition's parent run with ``results`` (asset -> its metrics
        and compute seconds); returns its id.

        ``upstream_metrics`` (asset -> metrics of the entries this result builds on) give the
        parent the headlines of results it re-uses, so a study member's parent run shows its
        classifier's accuracy and reference density's NLL without a tracking call per re-used
        entry. ``folded`` results have no run of their own: their files are logged to the
        parent under ``<asset>/`` and their store keys tagged on it.
        """
        from mlflow.entities import Metric, Param, RunTag

        client = session.client
        config = self._config(partition_key)
        tags = self._partition_tags(partition_key, config, git)
        if dagster_run_id:
            tags[DAGSTER_RUN_TAG] = links.dagster_run_url(dagster_run_id)
        state = self._parent_state(session, partition_key)
        values: dict[str, float] = {}
        if state is None:
            run = client.create_run(
                session.experiment_id,
                start_time=started_ms,
                run_name=tags.get(RUN_NAME_TAG, partition_key),
                tags=tags,
            )
            state = ParentState(run.info.run_id, set(), dict(tags), {})
            session.parents[partition_key] = state
            if config is not None:
                with suppress(Exception):  # the dataset view is a nicety; never block tracking
                    self._log_dataset(client, state.run_id, config)
            changed: list[Any] = []
        else:
            changed = [RunTag(k, v) for k, v in tags.items() if state.tags.get(k) != v]
            state.tags.update(tags)
        for upstream, upstream_values in (upstream_metrics or {}).items():
            values.update(parent_headlines(upstream, upstream_values))
        new_params: list[Any] = []
        if config is not None:
            params = self._resolved_batch_sizes(
                flatten(config.model_dump(mode="json")), self._n_train(config)
            )
            new_params = [
                Param(k, str(v)[:_MAX_PARAM_LENGTH])
                for k, v in params.items()
                if k not in state.params
            ]
            state.params.update(param.key for param in new_params)
        now = int(time.time() * 1000)
        for asset, (metrics, compute_seconds) in results.items():
            values.update(parent_headlines(asset, metrics))
            if compute_seconds is not None:
                state.compute_seconds[asset] = float(compute_seconds)
                values[f"{asset}_compute_seconds"] = float(compute_seconds)
                values["compute_seconds"] = sum(state.compute_seconds.values())
        changed += [RunTag(f"{TAG_PREFIX}store_key.{run.asset}", run.store_key) for run in folded]
        log_all(
            client,
            state.run_id,
            params=new_params,
            metrics=[Metric(k, v, now, 0) for k, v in values.items()],
            tags=changed,
        )
        for run in folded:
            self._log_files(client, state.run_id, run.artifacts, folder=run.asset)
        client.set_terminated(state.run_id, "FINISHED", end_time=now)
        return state.run_id

    # ---- child runs ----------------------------------------------------------------------

    def record(self, run: AssetRun) -> TrackingOutcome:
        """Log one asset's work; never raises (the failure is returned instead)."""
        if not self.enabled:
            return TrackingOutcome()  # switched off on purpose: nothing to report
        try:
            with self._serialised():
                return self._record(run)
        except Exception as error:  # any MLflow/network failure must not lose the result
            self._forget_session()
            return TrackingOutcome(error=f"{type(error).__name__}: {error}")

    def record_member(self, runs: Sequence[AssetRun]) -> list[TrackingOutcome]:
        """A study member's computed results, in as few runs as a comparison needs; never raises.

        A training keeps its child run (its learning curves); every other result is folded
        into the member's parent run: its headline metrics, its store key as a tag, its files
        under ``<asset>/``. The parent is the member's one row in the runs table either way.
        """
        if not self.enabled:
            return [TrackingOutcome() for _ in runs]
        try:
            with self._serialised():
                return self._record_member(runs)
        except Exception as error:  # any MLflow/network failure must not lose the results
            self._forget_session()
            return [TrackingOutcome(error=f"{type(error).__name__}: {error}") for _ in runs]

    def _record_member(self, runs: Sequence[AssetRun]) -> list[TrackingOutcome]:
        outcomes = {id(run): self._record(run) for run in runs if run.history}
        folded = [run for run in runs if not run.history]
        if folded:
            session = self._session()
            upstream: dict[str, dict[str, Any]] = {}
            for run in folded:
                upstream.update(run.upstream_metrics)
            parent_id = self._update_parent(
                session,
                folded[0].partition_key,
                {run.asset: (run.metrics, _compute_seconds(run)) for run in folded},
                int(min(run.started or time.time() for run in folded) * 1000),
                folded[0].dagster_run_id,
                git_state(settings.project_root()),
                upstream,
                folded,
            )
            url = self.run_url(session.experiment_id, parent_id)
            for run in folded:
                outcomes[id(run)] = TrackingOutcome(parent_id, session.experiment_id, url)
        return [outcomes[id(run)] for run in runs]

    @staticmethod
    def _log_files(client: Any, run_id: str, files: Sequence[Path], folder: str = "") -> None:
        """A store entry's files as artifacts under their own paths (below ``folder``)."""
        entry_dir, _ = _manifest_of(files)
        for path in files:
            relative = path.relative_to(entry_dir) if entry_dir else Path(path.name)
            if relative.parts and relative.parts[0] == PREVIEW_DIR:
                continue  # Dagster's small copies; MLflow keeps the full-size figures
            target = Path(folder) / relative.parent
            client.log_artifact(
                run_id, str(path), artifact_path=str(target) if target.parts else None
            )

    def _close_stale(self, client: Any, experiment_id: str, store_key: str) -> None:
        """Runs for this entry left RUNNING by a killed process: mark them KILLED."""
        stale = client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`{TAG_PREFIX}store_key` = '{store_key}' and attributes.status = 'RUNNING'"
            ),
        )
        now = int(time.time() * 1000)
        for old in stale:
            if self._is_server() and now - old.info.start_time < STALE_RUNNING_SECONDS * 1000:
                continue  # may be a live writer: servers are not serialised by our lock
            client.set_terminated(old.info.run_id, "KILLED", end_time=now)

    def _record(self, run: AssetRun) -> TrackingOutcome:
        from mlflow.entities import Metric, Param

        session = self._session()
        client, experiment_id = session.client, session.experiment_id
        if run.late:  # a killed process may have left a run of this entry RUNNING
            self._close_stale(client, experiment_id, run.store_key)
        now = time.time()
        seconds = _compute_seconds(run)
        ended = run.ended or now
        started = run.started or (ended - seconds)
        started_ms = int(started * 1000)
        git = git_state(settings.project_root())
        parent_id = self._update_parent(
            session,
            run.partition_key,
            {run.asset: (run.metrics, seconds)},
            started_ms,
            run.dagster_run_id,
            git,
            run.upstream_metrics,
        )
        config = self._config(run.partition_key)
        tags = {
            "mlflow.parentRunId": parent_id,
            "mlflow.source.git.commit": git.commit,
            "mlflow.source.type": "JOB",
            "mlflow.source.name": f"tabs_assets.defs.assets:{run.asset}",
            f"{TAG_PREFIX}partition_key": run.partition_key,
            f"{TAG_PREFIX}role": ROLE_ASSET,
            f"{TAG_PREFIX}asset": run.asset,
            f"{TAG_PREFIX}store_key": run.store_key,
            f"{TAG_PREFIX}dagster_run_id": run.dagster_run_id,
            f"{TAG_PREFIX}git_commit": git.commit,
            f"{TAG_PREFIX}git_dirty": str(git.dirty).lower(),
            DAGSTER_RUN_TAG: links.dagster_run_url(run.dagster_run_id),
            DAGSTER_ASSET_TAG: links.dagster_asset_url(run.asset, run.partition_key),
            "mlflow.note.content": (
                f"**{run.asset}** of [{run.partition_key}]"
                f"({links.dagster_asset_url(run.asset, run.partition_key)}) · "
                f"[Dagster run]({links.dagster_run_url(run.dagster_run_id)})"
                + (f"\n\n{config.description}" if config is not None and config.description else "")
                + ("\n\n(tracked when read, after an interrupted run)" if run.late else "")
            ),
        }
        if run.late:
            tags[f"{TAG_PREFIX}tracked_late"] = "true"
        child = client.create_run(
            experiment_id, start_time=started_ms, run_name=run.asset, tags=tags
        )
        run_id = child.info.run_id
        stamp = int(ended * 1000)
        n_train = self._n_train(config) if config is not None else None
        params = [
            Param(key, str(value)[:_MAX_PARAM_LENGTH])
            for key, value in self._resolved_batch_sizes(flatten(run.params), n_train).items()
        ]
        metrics = [
            Metric(name, float(value), stamp, int(row.get("epoch", step)))
            for step, row in enumerate(run.history)
            for name, value in row.items()
            if name != "epoch"
        ] + [Metric(name, float(value), stamp, 0) for name, value in run.metrics.items()]
        metrics.append(Metric("compute_seconds", float(seconds), stamp, 0))
        log_all(client, run_id, params=params, metrics=metrics)
        if run.asset == "dataset" and config is not None:
            with suppress(Exception):
                self._log_dataset(client, run_id, config)
        self._log_files(client, run_id, run.artifacts)
        if git.dirty:
            client.log_text(run_id, git.diff, "git/uncommitted.diff")
        # FINISHED comes last: it marks a run whose artifacts are all logged.
        client.set_terminated(run_id, "FINISHED", end_time=max(int(time.time() * 1000), stamp))
        return TrackingOutcome(
            run_id=run_id, experiment_id=experiment_id, url=self.run_url(experiment_id, run_id)
        )

    # ---- recovery: every entry read is tracked ----------------------------------------------

    def ensure_tracked(
        self, store: Any, entry: Any, partition_key: str, asset: str, dagster_run_id: str
    ) -> tuple[Any, TrackingOutcome | None]:
        """Track a store entry read on a cache hit if MLflow lacks it; never raises.

        Fast path (no mlflow import): the manifest names a finished run in this tracking store
        and this partition's parent run already shows the entry. Otherwise: a run that went
        missing or was left RUNNING by a killed process is replaced (stale RUNNING runs are
        closed as KILLED); a finished run the manifest does not know yet (killed between
        logging and writing the manifest) is adopted; the partition's parent run gets the
        entry's headline metrics. Returns the (possibly updated) entry and what happened
        (None when nothing had to be done).
        """
        manifest = entry.manifest
        uri = self.resolved_uri()
        partitions = list(manifest.get("mlflow_partitions") or [])
        if not self.enabled or (
            manifest.get("mlflow_run_id")
            and manifest.get("mlflow_tracking_uri") == uri
            and partition_key in partitions
        ):
            return entry, None
        try:
            with self._serialised():
                outcome = self._ensure(entry, partition_key, asset, dagster_run_id)
        except Exception as error:
            self._forget_session()
            return entry, TrackingOutcome(error=f"{type(error).__name__}: {error}")
        fields = {
            "mlflow_run_id": outcome.run_id,
            "mlflow_experiment_id": outcome.experiment_id,
            "mlflow_url": outcome.url,
            "mlflow_tracking_uri": uri,
            "mlflow_partitions": sorted({*partitions, partition_key}),
        }
        with suppress(OSError):  # a read-only store: tracked in MLflow, remembered next time
            entry = store.update_manifest(entry, **fields)
        return entry, outcome

    def _ensure(
        self, entry: Any, partition_key: str, asset: str, dagster_run_id: str
    ) -> TrackingOutcome:
        session = self._session()
        client, experiment_id = session.client, session.experiment_id
        manifest = entry.manifest
        run = None
        if (
            manifest.get("mlflow_run_id")
            and manifest.get("mlflow_tracking_uri") == self.resolved_uri()
        ):
            try:
                run = client.get_run(manifest["mlflow_run_id"])
            except Exception:  # deleted, or another store
                run = None
        if run is None or run.info.status != "FINISHED":
            found = client.search_runs(
                [experiment_id],
                filter_string=(
                    f"tags.`{TAG_PREFIX}store_key` = '{entry.key}' "
                    "and attributes.status = 'FINISHED' "
                    f"and tags.`{TAG_PREFIX}asset` = '{asset}'"
                ),
                max_results=1,
            )
            run = found[0] if found else None
        if run is None:
            return self._record(self._entry_run(entry, partition_key, asset, dagster_run_id))
        seconds = manifest.get("compute_seconds")
        self._update_parent(
            session,
            partition_key,
            {
                asset: (
                    manifest.get("report", {}).get("metrics", {}),
                    float(seconds) if seconds is not None else None,
                )
            },
            run.info.start_time,
            None,
            git_state(settings.project_root()),
        )
        return TrackingOutcome(
            run_id=run.info.run_id,
            experiment_id=experiment_id,
            url=self.run_url(experiment_id, run.info.run_id),
        )

    def _entry_run(
        self, entry: Any, partition_key: str, asset: str, dagster_run_id: str
    ) -> AssetRun:
        """An AssetRun rebuilt from a store entry (no per-epoch history: it is not stored)."""
        import yaml

        manifest = entry.manifest
        try:
            material = yaml.safe_load((entry.path / "config.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            material = {}
        metrics = manifest.get("report", {}).get("metrics", {})
        seconds = float(manifest.get("compute_seconds") or 0.0)
        created = _created_epoch(manifest)
        return AssetRun(
            partition_key=partition_key,
            asset=asset,
            store_key=entry.key,
            dagster_run_id=manifest.get("dagster_run_id") or dagster_run_id,
            params=material.get("slice", {}) if isinstance(material, dict) else {},
            metrics={
                k: v
                for k, v in metrics.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            },
            artifacts=sorted(p for p in entry.path.rglob("*") if p.is_file()),
            compute_seconds=seconds,
            started=(created - seconds) if created else None,
            ended=created,
            late=True,
        )
