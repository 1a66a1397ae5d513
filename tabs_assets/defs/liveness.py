"""A run that dies never blocks the next: free the pool slots of runs whose process is gone.

The training assets share a Dagster concurrency pool (one slot per GPU). A step holds its slot
until its run frees it; a run killed with SIGKILL frees nothing, so the slot stays claimed and
every later training step waits forever. Here every in-process run (``tabs-assets materialize``,
``execute_in_process``: the process that claims the slots is the one that runs the steps) holds
an OS lock on ``tabs_runs/<run_id>.lock`` in the instance's folder (``.dagster_home/``) for its
lifetime, with its host and pid in the lock's holder note (tabs_assets.locks). The OS drops the
lock when the process dies, however it dies; the note stays, and tells a dead run from one that
ended.

While a run is alive it checks every ``CHECK_INTERVAL_S`` (and once at its start) for lock
files that nobody holds: those runs are dead, so their slots are freed and the run is marked
failed in Dagster. Runs executed elsewhere (multiprocess, Celery, the daemon) take no lock and
are never touched here; Dagster's run monitoring (dagster.yaml) looks after them.
"""

import os
import threading
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabs_assets.locks import HeldLock, LockBusy

RUNS_DIR = "tabs_runs"
CHECK_INTERVAL_S = 2.0


def runs_dir(instance: Any) -> Path:
    return Path(instance.root_directory) / RUNS_DIR


@dataclass
class _Guard:
    lock: HeldLock
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


_GUARDS: dict[str, _Guard] = {}


def free_dead_runs(instance: Any, log: Any = None) -> list[str]:
    """Free the pool slots of runs whose process died (their lock is free); returns their ids."""
    directory = runs_dir(instance)
    freed = []
    for path in sorted(directory.glob("*.lock")) if directory.is_dir() else []:
        run_id = path.stem
        if run_id in _GUARDS or not _is_run_id(run_id):
            continue  # ours and alive, or not a file this module wrote
        lock = HeldLock(path)
        try:
            lock.acquire(0, leave_note=False)
        except (LockBusy, OSError):
            continue  # its process is alive, or a read-only Dagster home: nothing to do
        try:
            if lock.note_path.exists():  # the note goes before the lock when a run ends
                _report_dead(instance, run_id, lock.holder(), log)
                freed.append(run_id)
            with suppress(OSError):
                path.unlink()
        finally:
            lock.release()
    return freed


def _report_dead(instance: Any, run_id: str, holder: str, log: Any) -> None:
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        message = f"the run's process ({holder}) died; its pool slots were freed"
        instance.report_run_failed(run, message=message)
    if log is not None:
        log.warning(f"run {run_id} ({holder}) died; freed its pool slots, marked it failed")


def _is_run_id(name: str) -> bool:
    """A Dagster run id (a UUID): the only names this module gives its files."""
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


def _is_orchestrator(instance: Any, run_id: str) -> bool:
    """This process started the run (and so claims its slots): in-process execution."""
    from dagster import DagsterEventType

    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_START).records
    return bool(records) and records[0].event_log_entry.dagster_event.pid == os.getpid()


def start_guard(instance: Any, run_id: str, log: Any = None) -> bool:
    """Hold this run's liveness lock; free dead runs' slots now and while this run lives.

    Returns False (and does nothing) when this process does not orchestrate the run.
    """
    if run_id in _GUARDS:
        return True
    try:
        if not _is_orchestrator(instance, run_id):
            return False
        directory = runs_dir(instance)
        directory.mkdir(parents=True, exist_ok=True)
        lock = HeldLock(directory / f"{run_id}.lock")
        lock.acquire(10)
    except (OSError, LockBusy):
        return False  # liveness is a safety net, never a reason to fail a run
    guard = _Guard(lock)
    _GUARDS[run_id] = guard
    free_dead_runs(instance, log)

    def watch() -> None:
        while not guard.stop.wait(CHECK_INTERVAL_S):
            with suppress(Exception):
                free_dead_runs(instance, log)

    guard.thread = threading.Thread(target=watch, name=f"liveness-{run_id[:8]}", daemon=True)
    guard.thread.start()
    return True


def stop_guard(run_id: str) -> None:
    """The run ended: stop watching, remove its files, release the lock (in that order)."""
    guard = _GUARDS.pop(run_id, None)
    if guard is None:
        return
    guard.stop.set()
    guard.lock.release()  # its note first: a lock without a note is a run that ended
