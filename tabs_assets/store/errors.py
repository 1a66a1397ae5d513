"""What goes wrong in a store, as errors a user can act on."""

import errno
from pathlib import Path

# Errors that mean "this store cannot be written", not a bug: reported without a traceback.
_UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}


class CorruptEntryError(RuntimeError):
    """An entry whose files do not match its manifest."""


class StoreError(RuntimeError):
    """A store problem the user must act on (read-only or full disk, a lock held too long).

    Its message says what happened and what to do; the CLI prints it without a traceback.
    """


class LockTimeoutError(StoreError):
    """A key lock not acquired within the lock timeout."""


def unwritable(error: OSError, what: str, path: Path) -> StoreError:
    """A clear StoreError for an OSError that means the store cannot be written."""
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
    }.get(error.errno or 0, f"permission denied ({error.strerror})")
    return StoreError(
        f"cannot {what}: {reason} at {path}. Free space or make the store writable, or point "
        f"$TABS_ASSETS_STORE at a writable folder (cached results can still be read)."
    )


def is_unwritable(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in _UNWRITABLE
