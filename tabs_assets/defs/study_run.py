"""A study's members materialized inside one Dagster step, at close to the cost of the science.

Each member runs the per-config graph up to the study's ``member_asset`` through the same cached
path as a Dagster asset step (store lookup, per-key lock, compute once, MLflow), but without a
Dagster step, process or MLflow client per member: upstream results loaded once serve every
member that shares them, and an entry met once in this step is not verified again. The step
reports what it computed to Dagster as materializations of the member partitions, so the UI
shows each member's progress and results like any run's.
"""

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.defs.cached import (
    COMPUTE,
    LOADERS,
    Cached,
    CacheTarget,
    RunScope,
    config_inputs,
    materialize_cached,
    remember_tracking,
)
from tabs_assets.defs.compute import Inputs, RunLog
from tabs_assets.defs.resources import TrackingResource
from tabs_assets.graph.nodes import NODES, entry_address, store_key
from tabs_assets.registry.records import Registry, StudyRecord
from tabs_assets.store.entries import Store, StoreEntry
from tabs_assets.tracking.interface import AssetRun, TrackingOutcome

_LOGGER = logging.getLogger(__name__)
ReportFn = Callable[[list["MemberOutcome"]], None]  # members whose results are all tracked

# The mapping key of the one empty shard a study step yields when every member is cached.
NOTHING_TO_RUN = "nothing_to_run"


def member_plan(asset: str, config: ExperimentConfig) -> list[str]:
    """``asset`` and the upstream results it really depends on for ``config``, upstream first."""
    order: list[str] = []

    def visit(name: str) -> None:
        for upstream in NODES[name].upstream(config):
            visit(upstream)
        if name not in order:
            order.append(name)

    visit(asset)
    return order


def members_to_run(
    registry: Registry, store: Store, record: StudyRecord, include_cached: bool = False
) -> list[str]:
    """Members whose ``member_asset`` is not in the store (checked as a cache hit checks it),
    in study order."""
    asset = record.study.report.member_asset
    return [
        key
        for key in record.member_keys
        if include_cached or store.find(*entry_address(asset, registry.config(key))) is None
    ]


def shard_members(
    registry: Registry, members: Sequence[str], shards: int, asset: str
) -> list[list[str]]:
    """``members`` in at most ``shards`` contiguous groups; members sharing upstream results
    (same data set, classifier, flow) are kept together so each group loads them once."""

    def shared_upstream(key: str) -> tuple[str, ...]:
        config = registry.config(key)
        return tuple(store_key(name, config) for name in member_plan(asset, config)[:-1])

    ordered = sorted(members, key=shared_upstream)
    size = -(-len(ordered) // max(1, shards)) if ordered else 0
    return [ordered[i : i + size] for i in range(0, len(ordered), size)] if size else []


@dataclass
class MemberOutcome:
    partition_key: str
    results: dict[str, Cached] = field(default_factory=dict)
    error: str | None = None

    @property
    def computed(self) -> int:
        return sum(result.computed for result in self.results.values())


@dataclass(frozen=True)
class MemberLog:
    """A member's compute messages: progress (epochs, chunks) to Python's logger at DEBUG, not
    to the run's event log (an event-log write per line costs more than a member's science);
    warnings, named by member, to the step's log."""

    step_log: RunLog
    partition_key: str

    def info(self, msg: str) -> None:
        _LOGGER.debug("%s: %s", self.partition_key, msg)

    def warning(self, msg: str) -> None:
        self.step_log.warning(f"{self.partition_key}: {msg}")


class TrackingQueue:
    """MLflow logging on a thread beside the science: SQLite commits and artifact copies
    wait on the disk, and the next member's science need not wait for them.

    Stands in for the TrackingResource in a study step: ``record`` collects a member's results
    and answers ``pending``; ``member_done`` hands them to the thread, which logs them together
    (``TrackingResource.record_member``: one run per member, plus its trainings' child runs);
    ``finished`` hands back the outcomes logged so far, in order.
    """

    def __init__(self, tracking: TrackingResource) -> None:
        self._tracking = tracking
        self._jobs: queue.Queue[list[AssetRun] | None] = queue.Queue()
        self._done: queue.Queue[tuple[AssetRun, TrackingOutcome]] = queue.Queue()
        self._members: dict[str, list[AssetRun]] = {}
        self._queued = 0
        self._thread = threading.Thread(target=self._work, name="mlflow-tracking", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (runs := self._jobs.get()) is not None:
            outcomes = self._tracking.record_member(runs)  # never raises
            for run, outcome in zip(runs, outcomes, strict=True):
                self._done.put((run, outcome))

    def record(self, run: AssetRun) -> TrackingOutcome:
        self._members.setdefault(run.partition_key, []).append(run)
        self._queued += 1
        return TrackingOutcome(pending=True)

    def member_done(self, partition_key: str) -> None:
        """The member computed all it will: log its results."""
        runs = self._members.pop(partition_key, [])
        if runs:
            self._jobs.put(runs)

    def ensure_tracked(
        self, store: Any, entry: StoreEntry, partition_key: str, asset: str, dagster_run_id: str
    ) -> tuple[Any, TrackingOutcome | None]:
        """A result shared by the members (their data set, classifier, flow) that MLflow already
        has needs no call per member: each member's parent run gets its headlines when the
        member's own results are logged (``AssetRun.upstream_metrics``). Only an entry MLflow
        lacks (a crash, a lock timeout) is tracked now."""
        manifest = entry.manifest
        if manifest.get("mlflow_run_id") and (
            manifest.get("mlflow_tracking_uri") == self._tracking.resolved_uri()
        ):
            return entry, None
        return self._tracking.ensure_tracked(store, entry, partition_key, asset, dagster_run_id)

    def resolved_uri(self) -> str:
        return self._tracking.resolved_uri()

    def finished(self, wait: bool) -> list[tuple[AssetRun, TrackingOutcome]]:
        """Outcomes logged so far; with ``wait``, every queued one."""
        results = []
        while self._queued and (wait or not self._done.empty()):
            results.append(self._done.get())
            self._queued -= 1
        return results

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()


@dataclass
class MemberRunner:
    """Materializes members one after another, sharing what they have in common.

    A member is ready to report once every result it computed is tracked (with a ``tracking``
    queue, MLflow logs on a thread while the science goes on), so its Dagster materializations
    link to their MLflow runs. ``report`` gets ready members in batches, each member with all
    of its results, hits included: every member shows every asset it uses.
    """

    registry: Registry
    scope_for: Callable[[str], RunScope]  # the cached path's scope for one member partition
    report: ReportFn
    tracking: TrackingQueue | None = None
    batch_size: int = 32
    interval_s: float = 5.0
    seen: dict[tuple[str, str], StoreEntry] = field(default_factory=dict)
    _pending: dict[tuple[str, str], tuple[RunScope, MemberOutcome]] = field(default_factory=dict)
    _waiting: list[MemberOutcome] = field(default_factory=list)
    _ready: list[MemberOutcome] = field(default_factory=list)
    _reported_at: float = field(default_factory=time.monotonic)

    def run(self, partition_key: str, asset: str) -> MemberOutcome:
        outcome = MemberOutcome(partition_key)
        scope = self.scope_for(partition_key)
        try:
            config = self.registry.config(partition_key)
            for name in member_plan(asset, config):
                cached = self._materialize(scope, name, config)
                outcome.results[name] = cached
                if cached.outcome is not None and cached.outcome.pending:
                    self._pending[(name, partition_key)] = (scope, outcome)
        finally:  # what a failing member computed is tracked too
            if self.tracking is not None:
                self.tracking.member_done(partition_key)
        self._waiting.append(outcome)
        self.flush(wait=False)
        return outcome

    def flush(self, wait: bool) -> None:
        """Report the ready members: a full batch, or every ``interval_s``; with ``wait``,
        once all tracking has finished, every member left."""
        if self.tracking is not None:
            for run, tracked in self.tracking.finished(wait):
                scope, outcome = self._pending.pop((run.asset, run.partition_key))
                cached = outcome.results[run.asset]
                entry = remember_tracking(scope, cached.entry, tracked)
                self.seen[(entry.asset, entry.key)] = entry
                outcome.results[run.asset] = Cached(entry, cached.status, tracked)
        pending = {key for _, key in self._pending}
        self._ready += [o for o in self._waiting if o.partition_key not in pending]
        self._waiting = [o for o in self._waiting if o.partition_key in pending]
        due = time.monotonic() - self._reported_at >= self.interval_s
        if self._ready and (wait or due or len(self._ready) >= self.batch_size):
            self.report(self._ready)
            self._ready, self._reported_at = [], time.monotonic()

    def _materialize(self, scope: RunScope, name: str, config: ExperimentConfig) -> Cached:
        node = NODES[name]
        target = CacheTarget.for_config(node, config)
        address = (target.store_name, target.key)
        if address in self.seen:  # verified or made earlier in this step (forced ones too)
            return Cached(self.seen[address], "hit")
        inputs = Inputs(config_inputs(scope.store, node, config, scope.partition_key), LOADERS)
        compute = COMPUTE[name]
        cached = materialize_cached(scope, target, lambda: compute(config, inputs, scope.log))
        self.seen[address] = cached.entry
        return cached

    def run_all(self, members: Sequence[str], asset: str) -> Iterator[MemberOutcome]:
        """Every member in turn; a member that fails is reported and the others go on."""
        for key in members:
            try:
                yield self.run(key, asset)
            except Exception as error:  # one bad member must not lose the others' work
                yield MemberOutcome(key, error=f"{type(error).__name__}: {error}")
        self.flush(wait=True)


@dataclass
class ProgressLog:
    """When to write a progress line: the first and last member, and every
    ``interval_s`` in between (each line is an event-log write; each member's results are
    reported as materializations anyway)."""

    total: int
    interval_s: float = 5.0
    _last: float = field(default=-math.inf)

    def due(self, done: int) -> bool:
        now = time.monotonic()
        if done in (1, self.total) or now - self._last >= self.interval_s:
            self._last = now
            return True
        return False


def member_summary(outcome: MemberOutcome, done: int, total: int) -> str:
    """One progress line of the run log."""
    if outcome.error:
        return f"member {done}/{total} {outcome.partition_key}: FAILED: {outcome.error}"
    results = outcome.results
    return (
        f"member {done}/{total} {outcome.partition_key}: {outcome.computed} computed, "
        f"{len(results) - outcome.computed} cached"
    )


def json_statuses(outcome: MemberOutcome) -> dict[str, Any]:
    """What a shard step passes on for one member (plain data)."""
    return {
        "partition_key": outcome.partition_key,
        "error": outcome.error,
        "statuses": {name: result.status for name, result in outcome.results.items()},
    }
