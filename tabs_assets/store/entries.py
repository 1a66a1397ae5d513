"""Content-addressed, on-disk store of asset results: ``<root>/<asset>/<key>/``.

An entry holds the payload files, ``config.yaml`` (the asset's config slice) and
``manifest.json`` (checksums, sizes, provenance). Entries are written to a temporary directory
and renamed into place, so a reader sees a whole entry or none. A lock per key makes concurrent
writers do the work once. Every read verifies the checksums; a corrupt entry is removed and
recomputed, never used. The root may be shared by several machines (NFS): rename and POSIX
locks are what it relies on.

Durability: every file and directory of an entry is fsynced before the rename that publishes it,
and the parent directory after it, so a power loss leaves the whole entry or none. Files get the
permissions the umask allows (0644 with the usual umask), whatever library wrote them.
Key locks time out (``$TABS_ASSETS_LOCK_TIMEOUT`` seconds): the waiter then fails with a message
naming the lock and its holder (host, pid, since when), recorded in a ``.holder`` sidecar file.
"""

import errno
import fcntl
import json
import os
import shutil
import socket
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tabs_assets import settings
from tabs_assets.config.hashing import file_sha256
from tabs_assets.files import TEMP_PREFIX, fsync_path, umask, write_file_durably
from tabs_assets.locks import HeldLock, LockBusy

MANIFEST = "manifest.json"
CONFIG_SLICE = "config.yaml"
LOCK_DIR = ".locks"
REGISTRY_DIR = "registry"
_RESERVED = {LOCK_DIR, REGISTRY_DIR}
KEY_LENGTH = 32  # hex digits of a store key (a cut sha256)
# What else lives under a store root by default, named when gc lists it as kept.
_KNOWN_NEIGHBOURS = {
    "mlflow-artifacts": "MLflow's run artifacts",
    "mlflow.db": "MLflow's database",
    "raw": "downloaded raw data",
}
# A waiter gives up after this long: long enough for any single training of the studies here,
# short enough that a stuck holder is noticed. Failing is harmless: the holder goes on, publishes,
# and a rerun is a cache hit.
DEFAULT_LOCK_TIMEOUT_S = 3600.0
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


@dataclass(frozen=True)
class StoreEntry:
    """A complete, verified entry."""

    asset: str
    key: str
    path: Path
    manifest: dict[str, Any]

    @property
    def size_bytes(self) -> int:
        return sum(item["size"] for item in self.manifest["files"].values())


def _payload_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(TEMP_PREFIX)
    )


def _checksums(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        path.relative_to(directory).as_posix(): {
            "sha256": file_sha256(path),
            "size": path.stat().st_size,
        }
        for path in _payload_files(directory)
    }


@dataclass(frozen=True)
class GcItem:
    """A path gc removes or leaves alone, and why."""

    path: Path
    reason: str
    foreign: bool = False  # not the store's: kept (listed with --dry-run or --verbose)


@dataclass
class GcPlan:
    remove: list[GcItem] = field(default_factory=list)
    skipped: list[GcItem] = field(default_factory=list)


class Store:
    """The store under ``root``; safe to use from many processes at once."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()

    def entry_path(self, asset: str, key: str) -> Path:
        return self.root / asset / key

    def lock_path(self, asset: str, key: str) -> Path:
        return self.root / LOCK_DIR / asset / f"{key}.lock"

    def lock_holder(self, asset: str, key: str) -> str:
        """Who holds (or last took) a key lock: host, pid, since when, partition."""
        return HeldLock(self.lock_path(asset, key)).holder()

    @contextmanager
    def lock(
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
        path = self.lock_path(asset, key)
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

    def check_locks(self) -> None:
        """Raise a StoreError unless file locks exclude each other on the store's filesystem.

        The key locks are ``flock`` locks (filelock); on a cluster filesystem mounted without
        lock support they fail or, worse, silently succeed twice. Probed with two open files,
        as two processes would hold them (a lock belongs to an open file, not a process).
        """
        probe = self.root / LOCK_DIR / f".probe-{socket.gethostname()}-{os.getpid()}"
        try:
            probe.parent.mkdir(parents=True, exist_ok=True)
            with probe.open("w") as first, probe.open("w") as second:
                fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
                try:
                    fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return  # excluded, as it must be
                problem = "a second lock on a locked file was granted"
        except OSError as error:
            problem = f"locking failed: {error.strerror or error}"
        finally:
            with suppress(OSError):
                probe.unlink()
        raise StoreError(
            f"file locks do not work on the store's filesystem ({problem}) at {probe.parent}. "
            f"The store needs working locks and atomic rename: mount it with locking (NFS "
            f"without 'nolock'), or point $TABS_ASSETS_STORE at a filesystem that has them."
        )

    def lookup(self, asset: str, key: str) -> StoreEntry | None:
        """The verified entry, or None if absent; a corrupt entry is removed and None returned."""
        try:
            return self.verify(asset, key)
        except FileNotFoundError:
            return None
        except CorruptEntryError:
            self.remove(asset, key)
            return None

    def find(self, asset: str, key: str) -> StoreEntry | None:
        """The entry, checked without reading its payload where it can be: what a cache hit
        needs (``lookup`` reads every byte to verify the checksums).

        Every file the manifest lists must be there with its size (else the entry is removed).
        Files with the sizes and modification times recorded at writing are taken as written;
        any other (edited, or copied without times) is checksummed as ``lookup`` does. Silent
        corruption that keeps size and time is caught where the payload is read (``verify``).
        """
        path = self.entry_path(asset, key)
        if not path.is_dir():
            return None
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            stats = {name: (path / name).stat() for name in manifest["files"]}
            sizes = {name: stat.st_size for name, stat in stats.items()}
            complete = sizes == {name: item["size"] for name, item in manifest["files"].items()}
            as_written = manifest.get("mtimes") == {n: s.st_mtime_ns for n, s in stats.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            complete = as_written = False
        if complete and as_written:
            return StoreEntry(asset=asset, key=key, path=path, manifest=manifest)
        if complete:
            return self.lookup(asset, key)
        self.remove(asset, key)
        return None

    def verify(self, asset: str, key: str) -> StoreEntry:
        """Check every file against the manifest; raise CorruptEntryError on any mismatch."""
        path = self.entry_path(asset, key)
        manifest_path = path / MANIFEST
        if not path.is_dir():
            raise FileNotFoundError(path)
        try:
            manifest = json.loads(manifest_path.read_text())
            expected = manifest["files"]
        except (OSError, ValueError, KeyError) as error:
            raise CorruptEntryError(f"{path}: unreadable manifest ({error})") from error
        actual = _checksums(path)
        if actual != expected:
            names = sorted(
                n for n in set(actual) | set(expected) if actual.get(n) != expected.get(n)
            )
            raise CorruptEntryError(f"{path}: files do not match the manifest: {names}")
        return StoreEntry(asset=asset, key=key, path=path, manifest=manifest)

    def write(
        self,
        asset: str,
        key: str,
        save_payload: Callable[[Path], None],
        config_slice: Any,
        provenance: dict[str, Any],
        annotate: Callable[[Path], dict[str, Any]] | None = None,
        durable: bool = True,
    ) -> StoreEntry:
        """Write an entry atomically and durably: temporary directory, checksums, manifest,
        fsync, rename, fsync of the folder. A read-only or full store raises StoreError.

        ``annotate`` reads the complete entry (payload and manifest) before it is published and
        returns more manifest fields (e.g. check outcomes): no second manifest write.
        ``durable=False`` leaves the fsyncs to one ``sync()`` of a whole batch of entries: until
        then a power loss may leave an entry whose checksums fail, which is then recomputed.
        """
        final = self.entry_path(asset, key)
        temp = final.parent / f"{TEMP_PREFIX}{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            temp.mkdir(parents=True)
        except OSError as error:
            if is_unwritable(error):
                raise unwritable(error, f"write {asset}/{key}", final.parent) from None
            raise
        try:
            save_payload(temp)
            (temp / CONFIG_SLICE).write_text(yaml.safe_dump(config_slice, sort_keys=True))
            manifest = {
                "asset": asset,
                "key": key,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                **provenance,
                "files": _checksums(temp),
            }
            manifest["mtimes"] = {n: (temp / n).stat().st_mtime_ns for n in manifest["files"]}
            (temp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            if annotate is not None:
                manifest.update(annotate(temp))
                (temp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            normalize_permissions(temp)
            if durable:
                fsync_tree(temp)
            if final.exists():
                self.remove(asset, key)
            os.rename(temp, final)
            if durable:
                fsync_path(final.parent)
        except BaseException as error:
            shutil.rmtree(temp, ignore_errors=True)
            if is_unwritable(error):
                raise unwritable(error, f"write {asset}/{key}", final.parent) from None
            raise
        return StoreEntry(asset=asset, key=key, path=final, manifest=manifest)

    @staticmethod
    def sync() -> None:
        """Make every entry written with ``durable=False`` durable (one flush of the disks)."""
        os.sync()

    def update_manifest(self, entry: StoreEntry, **fields: Any) -> StoreEntry:
        """Add provenance fields (e.g. the MLflow run id) without touching the payload."""
        manifest = {**entry.manifest, **fields}
        try:
            text = json.dumps(manifest, indent=2, sort_keys=True)
            write_file_durably(entry.path / MANIFEST, text)
        except OSError as error:
            if is_unwritable(error):
                raise unwritable(error, f"update {entry.asset}/{entry.key}", entry.path) from None
            raise
        return StoreEntry(entry.asset, entry.key, entry.path, manifest)

    def remove(self, asset: str, key: str) -> None:
        """Move the entry aside (atomic) and delete it; a symlink is unlinked, never followed."""
        path = self.entry_path(asset, key)
        if path.is_symlink():
            path.unlink()
            return
        if not path.exists():
            return
        trash = path.parent / f"{TEMP_PREFIX}trash-{key}-{uuid.uuid4().hex[:8]}"
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def _asset_dirs(self) -> Iterator[Path]:
        """Asset folders: real directories directly under the root (symlinks are not followed)."""
        if not self.root.is_dir():
            return
        for asset_dir in sorted(self.root.iterdir()):
            if asset_dir.name in _RESERVED or asset_dir.name.startswith("."):
                continue
            if asset_dir.is_dir() and not asset_dir.is_symlink():
                yield asset_dir

    def entries(self) -> list[StoreEntry]:
        """Every complete entry (manifest present), unverified: for listing.

        Symlinked asset or entry folders are not entries of this store and are not listed.
        """
        found = []
        for asset_dir in self._asset_dirs():
            for entry_dir in sorted(asset_dir.iterdir()):
                manifest_path = entry_dir / MANIFEST
                if (
                    entry_dir.name.startswith(TEMP_PREFIX)
                    or entry_dir.is_symlink()
                    or not manifest_path.is_file()
                ):
                    continue
                try:
                    manifest = json.loads(manifest_path.read_text())
                    if not isinstance(manifest, dict):
                        raise ValueError("not an object")
                except (OSError, ValueError):
                    manifest = {"files": {}, "corrupt": True}
                found.append(StoreEntry(asset_dir.name, entry_dir.name, entry_dir, manifest))
        return found

    def gc_plan(
        self,
        referenced: set[tuple[str, str]],
        asset_folders: set[str] | frozenset[str],
        min_temp_age_s: float = 3600,
        protected_partitions: set[str] | frozenset[str] = frozenset(),
    ) -> GcPlan:
        """What gc would remove, and why; what it leaves alone and why (nothing is changed).

        gc touches only what this store made and can recognise as its own: entries in the
        ``asset_folders`` (an entry's manifest names its own folder and key) and the store's
        temporary folders (named by TEMP_PREFIX). Everything else under the root (MLflow's
        database and artifacts, downloaded raw data, a user's files) is listed as kept.

        Removed: entries not in ``referenced`` and not made by a ``protected_partitions``
        partition (their registry record cannot be read, so their keys are unknown); key-named
        folders of an asset folder whose manifest is missing or unreadable (a corrupt entry) and
        temporary folders, both older than ``min_temp_age_s``. Never followed: symlinks.
        """
        plan = GcPlan()
        if self.root.is_dir():
            for path in sorted(self.root.iterdir()):
                if path.name in _RESERVED or (path.name in asset_folders and _real_dir(path)):
                    continue
                plan.skipped.append(GcItem(path, _not_the_stores(path), foreign=True))
        now = time.time()
        for folder in sorted(asset_folders):
            asset_dir = self.root / folder
            if _real_dir(asset_dir):
                for path in sorted(asset_dir.iterdir()):
                    verdict = _gc_verdict(
                        path, now, referenced, min_temp_age_s, protected_partitions
                    )
                    if verdict is not None:
                        remove, reason = verdict
                        item = GcItem(path, reason, foreign=reason.startswith(NOT_OURS))
                        (plan.remove if remove else plan.skipped).append(item)
        return plan

    def gc_apply(self, plan: GcPlan) -> list[GcItem]:
        """Remove what ``plan`` lists; returns the items that could not be removed (why)."""
        failed = []
        for item in plan.remove:
            if not _inside(self.root, item.path):
                failed.append(GcItem(item.path, "outside the store root or through a symlink"))
                continue
            try:
                if item.path.is_dir():
                    # Rename first (atomic) so a reader never sees a half-deleted entry.
                    trash = (
                        item.path.parent
                        / f"{TEMP_PREFIX}trash-{item.path.name}-{uuid.uuid4().hex[:8]}"
                    )
                    if not item.path.name.startswith(TEMP_PREFIX):
                        os.rename(item.path, trash)
                    else:
                        trash = item.path
                    shutil.rmtree(trash)
                elif item.path.exists():
                    item.path.unlink()
            except FileNotFoundError:
                continue
            except OSError as error:
                reason = str(unwritable(error, "remove", item.path)) if is_unwritable(error) else ""
                failed.append(GcItem(item.path, reason or f"{error.strerror or error}"))
        return failed


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


NOT_OURS = "not the store's"


def _not_the_stores(path: Path) -> str:
    """Why gc keeps a path beside the store's own folders."""
    if path.is_symlink():
        return f"{NOT_OURS} (a symlink out of the store: not followed): kept"
    for prefix, what in _KNOWN_NEIGHBOURS.items():
        if path.name.startswith(prefix):
            return f"{NOT_OURS} ({what}): kept"
    return f"{NOT_OURS}: kept"


def _is_key(name: str) -> bool:
    return len(name) == KEY_LENGTH and all(c in "0123456789abcdef" for c in name)


def _gc_verdict(
    path: Path,
    now: float,
    referenced: set[tuple[str, str]],
    min_temp_age_s: float,
    protected_partitions: set[str] | frozenset[str],
) -> tuple[bool, str] | None:
    """(remove?, why) for one path in an asset folder; None: an entry in use, or the store's
    own temporary or corrupt folder still too young to be a dead writer's."""
    if path.is_symlink():
        return False, "a symlink: not followed"
    try:
        age = now - path.lstat().st_mtime
    except FileNotFoundError:
        return None  # removed meanwhile (a concurrent writer's temporary folder)
    old = age > min_temp_age_s
    if path.name.startswith(TEMP_PREFIX):
        return (True, f"temporary leftover of a killed writer ({_age(age)} old)") if old else None
    if not path.is_dir():
        return False, f"{NOT_OURS} (not an entry folder): kept"
    if (path.parent.name, path.name) in referenced:
        return None
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        made_by, key = manifest.get("partition_key"), manifest.get("key")
    except (OSError, ValueError, AttributeError):
        if not _is_key(path.name):
            return False, f"{NOT_OURS} (no manifest, not a store key): kept"
        return (True, "an entry without a readable manifest (corrupt)") if old else None
    if key != path.name:
        return False, f"{NOT_OURS} (its manifest names another key): kept"
    if made_by in protected_partitions:
        return False, f"made by {made_by}, whose registry record is broken: kept"
    why = "no registered config or study uses it"
    return True, why + (f" (made by {made_by})" if made_by else "")


def _age(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"


def _inside(root: Path, path: Path) -> bool:
    """``path`` is under ``root`` with no symlink on the way (its folder resolves in place)."""
    try:
        parent = path.parent.resolve(strict=True)
    except OSError:
        return False
    return (
        parent.is_relative_to(root) and parent == path.parent.absolute() and not (path.is_symlink())
    )
