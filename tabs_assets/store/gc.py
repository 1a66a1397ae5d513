"""Store upkeep: what ``store gc`` removes, and removing it.

gc touches only what the store made and can recognise as its own: entries of the asset folders
(an entry's manifest names its own folder and key), the store's temporary folders and corrupt
key-named folders. Everything else under the root is listed as kept, never removed.
"""

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tabs_assets.files import TEMP_PREFIX
from tabs_assets.store.entries import (
    KEY_LENGTH,
    MANIFEST,
    RESERVED,
    Store,
    is_unwritable,
    unwritable,
)

# What else lives under a store root by default, named when gc lists it as kept.
_KNOWN_NEIGHBOURS = {
    "mlflow-artifacts": "MLflow's run artifacts",
    "mlflow.db": "MLflow's database",
    "raw": "downloaded raw data",
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


def gc_plan(
    store: Store,
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
    if store.root.is_dir():
        for path in sorted(store.root.iterdir()):
            if path.name in RESERVED or (path.name in asset_folders and _real_dir(path)):
                continue
            plan.skipped.append(GcItem(path, _not_the_stores(path), foreign=True))
    now = time.time()
    for folder in sorted(asset_folders):
        asset_dir = store.root / folder
        if _real_dir(asset_dir):
            for path in sorted(asset_dir.iterdir()):
                verdict = _gc_verdict(path, now, referenced, min_temp_age_s, protected_partitions)
                if verdict is not None:
                    remove, reason = verdict
                    item = GcItem(path, reason, foreign=reason.startswith(NOT_OURS))
                    (plan.remove if remove else plan.skipped).append(item)
    return plan


def gc_apply(store: Store, plan: GcPlan) -> list[GcItem]:
    """Remove what ``plan`` lists; returns the items that could not be removed (why)."""
    failed = []
    for item in plan.remove:
        if not _inside(store.root, item.path):
            failed.append(GcItem(item.path, "outside the store root or through a symlink"))
            continue
        try:
            if item.path.is_dir():
                # Rename first (atomic) so a reader never sees a half-deleted entry.
                trash = (
                    item.path.parent / f"{TEMP_PREFIX}trash-{item.path.name}-{uuid.uuid4().hex[:8]}"
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
