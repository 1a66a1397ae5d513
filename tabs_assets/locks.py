"""An OS file lock with a note beside it that names its holder: the one lock every layer uses.

The lock is ``filelock``'s (``flock``: the OS drops it when the holder dies, however it dies).
The note, ``<lock>.holder``, says who holds it (host, pid, since when, and what the holder adds),
so whoever waits too long can be told whom they wait for. The note is informational: written
atomically without fsync, removed before the lock is released, never trusted for exclusion.
"""

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from tabs_assets.files import write_file_durably

NOTE_SUFFIX = ".holder"


class LockBusy(TimeoutError):
    """The lock stayed held for the whole wait; ``holder`` says by whom."""

    def __init__(self, path: Path, waited_s: float, holder: str) -> None:
        super().__init__(f"lock {path} still held after {waited_s:g} s by {holder}")
        self.path, self.waited_s, self.holder = path, waited_s, holder


class HeldLock:
    """One lock file and its holder note."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.note_path = path.with_name(path.name + NOTE_SUFFIX)
        self._lock = FileLock(path)

    def holder(self) -> str:
        """``host H pid P since T`` from the note, or why it cannot be told."""
        note = self.note()
        if not note:
            return "an unknown holder (no readable holder note)"
        who = " ".join(f"{name} {note.pop(name, '?')}" for name in ("host", "pid", "since"))
        return who + (f" ({', '.join(f'{k} {v}' for k, v in note.items())})" if note else "")

    def note(self) -> dict[str, Any]:
        """The holder's note as written (empty when unreadable)."""
        with suppress(OSError, ValueError):
            note = json.loads(self.note_path.read_text())
            if isinstance(note, dict):
                return note
        return {}

    def acquire(
        self,
        timeout_s: float | None,
        on_wait: Callable[[], None] | None = None,
        note: dict[str, Any] | None = None,
        leave_note: bool = True,
    ) -> None:
        """Take the lock: ``timeout_s`` None waits for ever, 0 does not wait. ``on_wait`` is
        called once, before waiting, if another process holds it. Raises LockBusy.
        ``leave_note=False`` keeps the last holder's note (to read what a dead holder left)."""
        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            if timeout_s == 0:
                raise LockBusy(self.path, 0, self.holder()) from None
            if on_wait is not None:
                on_wait()
            try:
                self._lock.acquire(timeout=-1 if timeout_s is None else timeout_s)
            except Timeout:
                raise LockBusy(self.path, timeout_s or 0, self.holder()) from None
        if not leave_note:
            return
        written = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **(note or {}),
        }
        with suppress(OSError):  # informational only
            write_file_durably(self.note_path, json.dumps(written), durable=False)

    def release(self) -> None:
        with suppress(OSError):  # before the release: the next holder writes its own
            self.note_path.unlink(missing_ok=True)
        self._lock.release()

    @contextmanager
    def held(
        self,
        timeout_s: float | None,
        on_wait: Callable[[], None] | None = None,
        note: dict[str, Any] | None = None,
    ) -> Iterator[None]:
        self.acquire(timeout_s, on_wait, note)
        try:
            yield
        finally:
            self.release()


def locks_problem(directory: Path) -> str | None:
    """Why OS file locks do not exclude each other in ``directory`` (None: they do).

    Probed with two open files, as two processes would hold them (a flock belongs to an open
    file, not to a process); a filesystem without lock support fails or grants both.
    """
    probe = directory / f".probe-{socket.gethostname()}-{os.getpid()}"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        with probe.open("w") as first, probe.open("w") as second:
            fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # excluded, as it must be
            return "a second lock on a locked file was granted"
    except OSError as error:
        return f"locking failed: {error.strerror or error}"
    finally:
        with suppress(OSError):
            probe.unlink()
