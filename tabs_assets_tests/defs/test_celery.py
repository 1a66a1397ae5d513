"""tabs_assets.defs.executors: the Celery executor, with a real Redis and real workers.

Each test starts redis-server and `dagster-celery worker start -y deploy/celery.yaml` workers on
127.0.0.1 (free ports), runs `dagster asset materialize` with TABS_ASSETS_EXECUTOR=celery (the
run process only submits steps; the workers compute them into the shared store), and stops
everything it started, also on failure. The instance uses the repository's dagster.yaml,
so the training pool limit (1 slot) is the real one.
"""

import itertools
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from filelock import FileLock

from tabs_assets.graph.nodes import entry_address
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import Store
from tabs_assets.store.key_locks import LOCK_DIR
from tabs_assets_tests.conftest import FAST_OVERRIDES, REPO, assert_store_is_valid
from tabs_assets_tests.services import (
    BIN,
    Service,
    Services,
    descendants,
    free_port,
    service_env,
    services,
    wait_until,
)

REDIS_SERVER = shutil.which("redis-server")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        REDIS_SERVER is None,
        reason="redis-server is not installed (CI installs it: apt-get install redis-server)",
    ),
]

TRAINING_QUEUE = "gpu"
TRAINING_STEPS = {"classifier", "generative_model", "reference_density"}
# The selection the tests materialize: the whole config graph up to the metrics.
SELECTION = "*explanation_metrics"
FINISHED_TOO_EARLY = -1
SELECTED = [
    "dataset",
    "classifier",
    "generative_model",
    "reference_density",
    "counterfactual_paths",
    "explanation_metrics",
]


@dataclass
class CeleryStack:
    services: Services
    workers: dict[str, Service] = field(default_factory=dict)

    def start_worker(self, name: str, queues: str, processes: int = 1) -> Service:
        """A worker on ``queues`` running up to ``processes`` steps at once."""
        worker = self.services.start(
            name,
            [
                str(BIN / "dagster-celery"),
                "worker",
                "start",
                "-A",
                "dagster_celery.app",
                "-y",
                str(REPO / "deploy" / "celery.yaml"),
                "-n",
                name,
                "-q",
                queues,
                "--",
                "-c",
                str(processes),
            ],
        )
        wait_until(
            lambda: f"{name}@" in worker.log() and " ready." in worker.log(),
            120,
            f"Celery worker {name}",
            self.services.logs,
        )
        self.workers[name] = worker
        return worker

    def materialize(self, name: str, partition_key: str, selection: str = SELECTION) -> Service:
        """`dagster asset materialize` of one partition: the run process submits to Celery."""
        return self.services.start(
            name,
            [
                str(BIN / "dagster"),
                "asset",
                "materialize",
                "-m",
                "tabs_assets.defs.definitions",
                "--select",
                selection,
                "--partition",
                partition_key,
            ],
        )

    def worker_processes(self) -> dict[int, str]:
        """pid -> worker name, for every process of every running worker."""
        return {
            pid: name
            for name, worker in self.workers.items()
            for pid in {worker.pid} | descendants(worker.pid)
        }


@pytest.fixture
def celery_stack(project_env: dict[str, Path], tmp_path: Path) -> Iterator[CeleryStack]:
    """redis-server on a free loopback port; workers are started by the test."""
    import redis

    shutil.copyfile(REPO / "dagster.yaml", project_env["dagster_home"] / "dagster.yaml")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = service_env(
        {
            "TABS_ASSETS_EXECUTOR": "celery",
            "TABS_ASSETS_CELERY_BROKER": url,
            "TABS_ASSETS_CELERY_BACKEND": url,
            "TABS_ASSETS_TRAINING_QUEUE": TRAINING_QUEUE,
        },
        drop=["MLFLOW_TRACKING_URI"],
    )
    with services(tmp_path / "logs", env) as stack:
        stack.start(
            "redis",
            [
                str(REDIS_SERVER),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
        )
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=2)
        wait_until(client.ping, 30, "redis-server", stack.logs)
        yield CeleryStack(stack)


@dataclass
class StepRecord:
    worker: str | None = None
    pid: int | None = None
    start: float | None = None
    end: float | None = None
    status: str | None = None


def run_of(instance: DagsterInstance, partition_key: str) -> Any:
    runs = instance.get_runs(filters=RunsFilter(tags={"dagster/partition": partition_key}))
    return runs[0] if runs else None  # newest first


def step_records(instance: DagsterInstance, run_id: str) -> dict[str, StepRecord]:
    """Which Celery worker ran each step, in which process, from when to when."""
    steps: dict[str, StepRecord] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        step = steps.setdefault(event.step_key, StepRecord())
        if event.event_type == DagsterEventType.ENGINE_EVENT and event.engine_event_data:
            worker = event.engine_event_data.metadata.get("Celery worker")
            if worker is not None:
                step.worker = worker.value.split("@")[0]
        elif event.event_type == DagsterEventType.STEP_START:
            step.start, step.pid = record.timestamp, event.pid
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            step.end, step.status = record.timestamp, event.event_type_value
    return steps


def messages(instance: DagsterInstance, run_id: str) -> list[str]:
    return [
        record.user_message or (record.dagster_event.message or "" if record.dagster_event else "")
        for record in instance.all_logs(run_id)
    ]


def test_two_partitions_run_on_celery_workers_into_the_shared_store(
    celery_stack: CeleryStack, register, project_env: dict[str, Path]
) -> None:
    keys = [
        register("celery_a", {**FAST_OVERRIDES, "classifier.training.seed": 1}),
        register("celery_b", {**FAST_OVERRIDES, "classifier.training.seed": 2}),
    ]
    # Training goes to the worker on the training queue ("the GPU machine"); the other only
    # takes the default queue. The GPU worker could run two steps at once: only the pool keeps
    # its trainings apart.
    celery_stack.start_worker("gpu_worker", f"dagster,{TRAINING_QUEUE}", processes=2)
    celery_stack.start_worker("cpu_worker", "dagster")
    started = time.monotonic()
    runs = [celery_stack.materialize(f"run_{i}", key) for i, key in enumerate(keys)]
    for run in runs:
        assert run.wait(timeout=420) == 0, run.log()[-6000:]
    wall = time.monotonic() - started
    worker_processes = celery_stack.worker_processes()
    print(f"celery: two partitions in {wall:.1f} s")

    instance = DagsterInstance.get()
    registry, store = Registry(project_env["store"]), Store(project_env["store"])
    for key in keys:
        run = run_of(instance, key)
        assert run.status == DagsterRunStatus.SUCCESS
        steps = step_records(instance, run.run_id)
        assert set(steps) == set(SELECTED)  # the asset checks are reported by their assets' steps
        evaluations = instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        assert len(evaluations) == 6
        assert all(r.event_log_entry.dagster_event.step_key in steps for r in evaluations)
        for name, step in steps.items():
            # Each step ran in a worker's process, not in the run's own process.
            assert step.worker in celery_stack.workers, (name, step)
            assert worker_processes.get(step.pid) == step.worker, (name, step, worker_processes)
            if name in TRAINING_STEPS:
                assert step.worker == "gpu_worker", (name, step)
        # The "gpu" pool (dagster.yaml: default_limit 1) ran the run's trainings one at a time,
        # although the GPU worker had two free processes. (Across runs too, except when two
        # runs claim the slot in the same instant: Dagster checks, then claims.)
        trainings = sorted((steps[name].start, steps[name].end, name) for name in TRAINING_STEPS)
        for (_, end, first), (start, _, second) in itertools.pairwise(trainings):
            assert end <= start, (key, first, second)
        # Results are in the shared store, verified, written by a worker process.
        config = registry.config(key)
        for name in SELECTED:
            entry = store.verify(*entry_address(name, config))
            assert entry.manifest["host"] == socket.gethostname()
            assert entry.manifest["pid"] in worker_processes, (name, entry.manifest["pid"])
    pool = instance.event_log_storage.get_concurrency_info("gpu")
    assert pool.slot_count == 1 and not pool.claimed_slots
    assert_store_is_valid(store)


def test_worker_killed_mid_training_leaves_a_valid_store_and_the_rerun_completes(
    celery_stack: CeleryStack, register, project_env: dict[str, Path]
) -> None:
    # Enough epochs that the training is still running when its first epoch is logged.
    key = register(
        "killed",
        {
            **FAST_OVERRIDES,
            "classifier.training.max_epochs": 12,
            "classifier.training.patience": 12,
        },
    )
    config = Registry(project_env["store"]).config(key)
    store = Store(project_env["store"])
    classifier_address = entry_address("classifier", config)
    instance = DagsterInstance.get()
    worker = celery_stack.start_worker("gpu_worker", f"dagster,{TRAINING_QUEUE}")
    first = celery_stack.materialize("first_run", key)

    def training_process() -> int | None:
        run = run_of(instance, key)
        if run is None:
            return None
        step = step_records(instance, run.run_id).get("classifier")
        if step is None or step.pid is None:
            return None
        if step.end is not None:
            return FINISHED_TOO_EARLY
        logged_epoch = any("classifier epoch 1 of" in m for m in messages(instance, run.run_id))
        return step.pid if logged_epoch else None

    pid = wait_until(
        training_process, 240, "the classifier's first epoch", celery_stack.services.logs
    )
    assert pid != FINISHED_TOO_EARLY, "the classifier trained too fast to be killed: more epochs"
    assert pid in descendants(worker.pid)
    os.kill(pid, signal.SIGKILL)  # the worker process dies in the middle of training
    failed = run_of(instance, key)
    # Celery reports the lost task, Dagster marks the step failed and skips what depends on it.
    wait_until(
        lambda: any(
            record.level >= logging.ERROR and "classifier" in (record.user_message or "")
            for record in instance.all_logs(failed.run_id)
        ),
        120,
        "Dagster to notice the lost classifier step",
        celery_stack.services.logs,
    )
    # dagster-celery then stops submitting steps but waits for those it did not submit
    # (reference_density here): such a run never ends by itself. Terminate it, as the UI does.
    first.process.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) != 0
    assert run_of(instance, key).status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)

    # Nothing half-written is visible: every entry verifies, the classifier has none, and the
    # OS released the dead process's lock on its key.
    assert_store_is_valid(store)
    assert not store.entry_path(*classifier_address).exists()
    assert store.lookup(*entry_address("dataset", config)) is not None
    lock = FileLock(store.root / LOCK_DIR / classifier_address[0] / f"{classifier_address[1]}.lock")
    lock.acquire(timeout=5)
    lock.release()

    # dagster-celery keeps the pool slot of a step whose worker died; the daemon frees it
    # `run_monitoring.free_slots_after_run_end_seconds` after the run ended (dagster.yaml), the
    # UI at once. No daemon runs here, so do what it does.
    instance.event_log_storage.free_concurrency_slots_for_run(failed.run_id)

    second = celery_stack.materialize("second_run", key)
    assert second.wait(timeout=420) == 0, second.log()[-6000:]
    rerun = run_of(instance, key)
    assert rerun.run_id != failed.run_id and rerun.status == DagsterRunStatus.SUCCESS
    for name in SELECTED:
        store.verify(*entry_address(name, config))
    classifier = store.verify(*classifier_address).manifest
    assert classifier["dagster_run_id"] == rerun.run_id and classifier["pid"] != pid
    assert_store_is_valid(store)
    assert celery_stack.workers["gpu_worker"].running()  # Celery replaced the killed process


def test_a_study_fans_its_members_out_over_celery_workers(
    celery_stack: CeleryStack, project_env: dict[str, Path]
) -> None:
    """The same study path as in process: shards of members become Celery tasks."""
    from tabs_assets_tests.studies import register_study, study_file

    key = register_study(project_env, study_file(project_env["experiments"], "fanned", [1, 2, 3]))
    # Read where the planning step runs, so set for the workers (deploy/tabs-assets.env).
    celery_stack.services.env["TABS_ASSETS_STUDY_SHARDS"] = "2"
    celery_stack.start_worker("worker_a", f"dagster,{TRAINING_QUEUE}", processes=2)
    celery_stack.start_worker("worker_b", f"dagster,{TRAINING_QUEUE}")
    run = celery_stack.materialize("study", key, selection="study_members*")
    assert run.wait(timeout=420) == 0, run.log()[-6000:]
    instance = DagsterInstance.get()
    study_run = run_of(instance, key)
    assert study_run.status == DagsterRunStatus.SUCCESS
    steps = step_records(instance, study_run.run_id)
    shards = {name: step for name, step in steps.items() if "materialize_study_shard" in name}
    assert len(shards) == 2, steps
    worker_processes = celery_stack.worker_processes()
    for name, step in shards.items():
        assert step.worker in celery_stack.workers, (name, step)
        assert worker_processes.get(step.pid) == step.worker, (name, step)
    record = Registry(project_env["store"]).study(key)
    members = set(instance.get_materialized_partitions(AssetKey("explanation_metrics")))
    assert members == set(record.member_keys)
    assert set(instance.get_materialized_partitions(AssetKey("study_report"))) == {key}
    assert_store_is_valid(Store(project_env["store"]))
