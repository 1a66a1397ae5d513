"""Atomic, durable file writes: the one helper every layer uses (store, registry, download cache).

Below every layer on purpose: it knows nothing of any of them, so each may import it.
"""

import errno
import os
import stat
import uuid
from pathlib import Path

# A temporary file or folder of a writer: readers and the store's gc recognise it by this prefix.
TEMP_PREFIX = ".tmp-"


def umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it (and set it back at once)
    os.umask(mask)
    return mask


def fsync_path(path: Path) -> None:
    """fsync one file or directory (directories: their entries, i.e. creates and renames)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    except OSError as error:  # some file systems cannot fsync a directory; the data is synced
        if error.errno not in (errno.EINVAL, errno.EBADF) or not path.is_dir():
            raise
    finally:
        os.close(fd)


def write_file_durably(path: Path, text: str, durable: bool = True) -> None:
    """Write ``text`` to a temporary sibling and rename it over ``path``: a reader sees the old
    file or the new one, never a part. ``durable``: fsync the file before the rename and the
    folder after it, so a power loss leaves one of the two as well (off only for files that
    matter while this process lives, such as a lock's holder note)."""
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        with open(temp, "w") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(temp, 0o666 & ~umask())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(path.parent)


def normalize_permissions(directory: Path) -> None:
    """Give every file and folder under ``directory`` the permissions the umask allows.

    safetensors and tempfile create 0600 files; every store file should be like the others.
    """
    mask = umask()
    for path in [directory, *directory.rglob("*")]:
        if path.is_symlink():
            continue
        mode = 0o777 if path.is_dir() else 0o666
        if stat.S_IMODE(path.stat().st_mode) != mode & ~mask:
            os.chmod(path, mode & ~mask)


def fsync_tree(directory: Path) -> None:
    """fsync every file, then every directory (deepest first) under ``directory``."""
    paths = [p for p in directory.rglob("*") if not p.is_symlink()]
    for path in paths:
        if path.is_file():
            fsync_path(path)
    for path in sorted((p for p in paths if p.is_dir()), key=lambda p: -len(p.parts)):
        fsync_path(path)
    fsync_path(directory)
