"""One lock per store key: concurrent writers of a key compute it once (tabs_assets.locks)."""

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tabs_assets import settings
from tabs_assets.locks import HeldLock, LockBusy, locks_problem
from tabs_assets.store.errors import LockTimeoutError, StoreError, is_unwritable, unwritable

LOCK_DIR = ".locks"


class KeyLocks:
    """The key locks under ``<root>/.locks/<asset>/<key>.lock``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, asset: str, key: str) -> Path:
        return self.root / LOCK_DIR / asset / f"{key}.lock"

    def holder(self, asset: str, key: str) -> str:
        """Who holds (or last took) a key lock: host, pid, since when, partition."""
        return HeldLock(self.path(asset, key)).holder()

    @contextmanager
    def hold(
        self,
        asset: str,
        key: str,
        on_wait: Callable[[], None] | None = None,
        timeout_s: float | None = None,
        holder_info: dict[str, Any] | None = None,
    ) -> Iterator[None]:
        """Exclusive lock on one key (released by the OS if the holder dies).

        ``on_wait`` is called once if another process holds the lock, before blocking. After
        ``timeout_s`` (default: $TABS_ASSETS_LOCK_TIMEOUT or 1 h) a LockTimeoutError names the
        lock and its holder (``<key>.lock.holder``, see tabs_assets.locks).
        """
        path = self.path(asset, key)
        timeout = settings.lock_timeout_s() if timeout_s is None else timeout_s
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(path.parent, os.W_OK):  # a lock file cannot be opened for writing
                raise OSError(errno.EACCES, "not writable", str(path.parent))
        except OSError as error:
            if is_unwritable(error):
                raise unwritable(error, f"lock {asset}/{key}", path.parent) from None
            raise
        lock = HeldLock(path)
        try:
            lock.acquire(timeout, on_wait, holder_info)
        except LockBusy as busy:
            raise LockTimeoutError(
                f"lock {path} not acquired within {timeout:g} s: it is held by "
                f"{busy.holder}. That process is computing {asset}/{key}; "
                f"wait for it, or stop it if it hangs, or raise ${settings.LOCK_TIMEOUT_ENV} "
                "(seconds)."
            ) from None
        try:
            yield
        finally:
            lock.release()

    def check(self) -> None:
        """Raise a StoreError unless file locks exclude each other on the store's filesystem
        (a cluster filesystem mounted without lock support fails, or silently locks twice)."""
        problem = locks_problem(self.root / LOCK_DIR)
        if problem is not None:
            raise StoreError(
                f"file locks do not work on the store's filesystem ({problem}) at "
                f"{self.root / LOCK_DIR}. The store needs working locks and atomic rename: mount "
                f"it with locking (NFS without 'nolock'), or point $TABS_ASSETS_STORE at a "
                f"filesystem that has them."
            )
