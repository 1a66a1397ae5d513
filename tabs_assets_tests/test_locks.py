"""tabs_assets.locks: one lock with a holder note, for the store, MLflow and run liveness."""

import multiprocessing
import os
from pathlib import Path

import pytest

from tabs_assets.locks import HeldLock, LockBusy


def _hold(
    path: Path, held: "multiprocessing.synchronize.Event", done: "multiprocessing.synchronize.Event"
) -> None:
    lock = HeldLock(path)
    lock.acquire(None, note={"partition_key": "wine-1234"})
    held.set()
    done.wait(30)
    lock.release()


def test_a_waiter_is_told_who_holds_the_lock_and_gets_it_once_released(tmp_path: Path) -> None:
    path = tmp_path / "k.lock"
    context = multiprocessing.get_context("spawn")
    held, done = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(path, held, done))
    holder.start()
    try:
        assert held.wait(30)
        waited = []
        with pytest.raises(LockBusy) as busy:
            HeldLock(path).acquire(0.2, on_wait=lambda: waited.append(1))
        assert waited == [1]
        assert f"pid {holder.pid}" in busy.value.holder
        assert "partition_key wine-1234" in busy.value.holder
        assert busy.value.waited_s == 0.2
        with pytest.raises(LockBusy):
            HeldLock(path).acquire(0)
    finally:
        done.set()
        holder.join(30)
    lock = HeldLock(path)
    assert not lock.note_path.exists()  # a holder removes its note before releasing
    with lock.held(1, note={"step": "x"}):
        assert lock.note()["pid"] == os.getpid() and lock.note()["step"] == "x"
    assert not lock.note_path.exists()


def test_a_dead_holders_note_stays_and_can_be_read_without_overwriting(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    HeldLock(path).note_path.write_text('{"host": "node7", "pid": 41, "since": "then"}')
    lock = HeldLock(path)
    lock.acquire(0, leave_note=False)
    assert lock.holder() == "host node7 pid 41 since then"
    lock.release()
    assert HeldLock(tmp_path / "none.lock").holder().startswith("an unknown holder")
