"""Content-addressed, on-disk store of asset results: ``<root>/<asset>/<key>/``.

An entry holds the payload files, ``config.yaml`` (the asset's config slice) and
``manifest.json`` (checksums, sizes, provenance). Entries are written to a temporary directory
and renamed into place, so a reader sees a whole entry or none. A lock per key makes concurrent
writers do the work once. Every read verifies the checksums; a corrupt entry is removed and
recomputed, never used. The root may be shared by several machines (NFS): rename and POSIX
locks are what it relies on.
"""

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout

from tabs_assets.config.hashing import file_sha256

MANIFEST = "manifest.json"
CONFIG_SLICE = "config.yaml"
TEMP_PREFIX = ".tmp-"
LOCK_DIR = ".locks"
REGISTRY_DIR = "registry"
_RESERVED = {LOCK_DIR, REGISTRY_DIR}


class CorruptEntryError(RuntimeError):
    """An entry whose files do not match its manifest."""


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

    def entry_path(self, asset: str, key: str) -> Path:
        return self.root / asset / key

    @contextmanager
    def lock(
        self, asset: str, key: str, on_wait: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """Exclusive lock on one key (released by the OS if the holder dies).

        ``on_wait`` is called once if another process holds the lock, before blocking.
        """
        lock = FileLock(self.root / LOCK_DIR / asset / f"{key}.lock")
        Path(lock.lock_file).parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(blocking=False)
        except Timeout:
            if on_wait is not None:
                on_wait()
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def lookup(self, asset: str, key: str) -> StoreEntry | None:
        """The verified entry, or None if absent; a corrupt entry is removed and None returned."""
        try:
            return self.verify(asset, key)
        except FileNotFoundError:
            return None
        except CorruptEntryError:
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
    ) -> StoreEntry:
        """Write an entry atomically: temporary directory, checksums, manifest, rename."""
        final = self.entry_path(asset, key)
        temp = final.parent / f"{TEMP_PREFIX}{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        temp.mkdir(parents=True)
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
            (temp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            if final.exists():
                self.remove(asset, key)
            os.rename(temp, final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return StoreEntry(asset=asset, key=key, path=final, manifest=manifest)

    def update_manifest(self, entry: StoreEntry, **fields: Any) -> StoreEntry:
        """Add provenance fields (e.g. the MLflow run id) without touching the payload."""
        manifest = {**entry.manifest, **fields}
        temp = entry.path / f"{TEMP_PREFIX}{MANIFEST}-{uuid.uuid4().hex[:8]}"
        temp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        os.replace(temp, entry.path / MANIFEST)
        return StoreEntry(entry.asset, entry.key, entry.path, manifest)

    def remove(self, asset: str, key: str) -> None:
        """Move the entry aside (atomic) and delete it."""
        path = self.entry_path(asset, key)
        if not path.exists():
            return
        trash = path.parent / f"{TEMP_PREFIX}trash-{key}-{uuid.uuid4().hex[:8]}"
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def entries(self) -> list[StoreEntry]:
        """Every complete entry (manifest present), unverified: for listing."""
        found = []
        if not self.root.exists():
            return found
        for asset_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if asset_dir.name in _RESERVED or asset_dir.name.startswith("."):
                continue
            for entry_dir in sorted(asset_dir.iterdir()):
                manifest_path = entry_dir / MANIFEST
                if entry_dir.name.startswith(TEMP_PREFIX) or not manifest_path.is_file():
                    continue
                try:
                    manifest = json.loads(manifest_path.read_text())
                except ValueError:
                    manifest = {"files": {}, "corrupt": True}
                found.append(StoreEntry(asset_dir.name, entry_dir.name, entry_dir, manifest))
        return found

    def garbage_collect(
        self, referenced: set[tuple[str, str]], dry_run: bool = False, min_temp_age_s: float = 3600
    ) -> list[Path]:
        """Remove entries not in ``referenced`` and stale temporary directories."""
        doomed = [e.path for e in self.entries() if (e.asset, e.key) not in referenced]
        now = time.time()
        for asset_dir in (
            (p for p in self.root.iterdir() if p.is_dir()) if self.root.exists() else []
        ):
            if asset_dir.name in _RESERVED:
                continue
            doomed += [
                temp
                for temp in asset_dir.glob(f"{TEMP_PREFIX}*")
                if now - temp.stat().st_mtime > min_temp_age_s
            ]
        if not dry_run:
            for path in doomed:
                shutil.rmtree(path, ignore_errors=True)
        return doomed
