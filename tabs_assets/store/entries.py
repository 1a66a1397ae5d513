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

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tabs_assets.config.hashing import file_sha256
from tabs_assets.files import (
    TEMP_PREFIX,
    fsync_path,
    fsync_tree,
    normalize_permissions,
    write_file_durably,
)
from tabs_assets.store.errors import CorruptEntryError, is_unwritable, unwritable
from tabs_assets.store.key_locks import LOCK_DIR, KeyLocks

MANIFEST = "manifest.json"
CONFIG_SLICE = "config.yaml"
REGISTRY_DIR = "registry"
RESERVED = {LOCK_DIR, REGISTRY_DIR}
KEY_LENGTH = 32  # hex digits of a store key (a cut sha256)


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


class Store:
    """The store under ``root``; safe to use from many processes at once."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()
        self.locks = KeyLocks(self.root)

    def entry_path(self, asset: str, key: str) -> Path:
        return self.root / asset / key

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
            if asset_dir.name in RESERVED or asset_dir.name.startswith("."):
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
