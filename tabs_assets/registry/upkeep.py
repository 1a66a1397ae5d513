"""Registry and store upkeep: what every registered config and study uses, gc, unregister.

Everything here tolerates a broken registry record (garbage JSON, a config that no longer
validates, a data file that is gone): it is skipped and reported, never fatal. Store entries
made by a broken record's partition are kept by gc, since their keys cannot be computed.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.graph.nodes import NODES, STUDY_ROOTS, entry_address, study_store_key
from tabs_assets.registry.records import BrokenRecord, Registry, RegistryScan
from tabs_assets.store.entries import Store
from tabs_assets.store.gc import GcItem, GcPlan, gc_apply, gc_plan

STUDY_ASSETS = tuple(STUDY_ROOTS)  # study_members, study_table, study_report
# The store folders gc manages: one per asset result kind; nothing else under the root.
ASSET_FOLDERS = frozenset({node.store_name for node in NODES.values()} | set(STUDY_ASSETS))


def config_addresses(config: ExperimentConfig) -> set[tuple[str, str]]:
    """(store folder, key) of every asset of ``config`` (reads a tabular file's fingerprint)."""
    return {entry_address(name, config) for name in NODES}


def cached_assets(config: ExperimentConfig, store: Store) -> dict[str, bool]:
    """Per-config asset -> whether its result for ``config`` is in the store (unverified)."""
    return {name: store.entry_path(*entry_address(name, config)).is_dir() for name in NODES}


def scan_registry(registry: Registry) -> RegistryScan:
    """Every usable record; a config whose store keys cannot be computed counts as broken."""
    scan = registry.scan(check=config_addresses)
    for key, record in list(scan.studies.items()):
        members = {m: scan.configs[m] for m in record.member_keys}
        try:
            for asset in STUDY_ASSETS:
                study_store_key(asset, record.study, members)
        except Exception as error:
            del scan.studies[key]
            scan.broken.append(
                BrokenRecord("study", key, registry.studies_dir / f"{key}.json", str(error))
            )
    return scan


def referenced_entries(scan: RegistryScan) -> set[tuple[str, str]]:
    """Every store entry a usable config or study uses (with the current code)."""
    referenced: set[tuple[str, str]] = set()
    for config in scan.configs.values():
        referenced |= config_addresses(config)
    for record in scan.studies.values():
        members = {m: scan.configs[m] for m in record.member_keys}
        referenced |= {
            (asset, study_store_key(asset, record.study, members)) for asset in STUDY_ASSETS
        }
    return referenced


@dataclass
class GcReport:
    scan: RegistryScan
    plan: GcPlan
    failed: list[GcItem] = field(default_factory=list)


def collect_garbage(
    registry: Registry, store: Store, dry_run: bool, min_temp_age_s: float = 3600
) -> GcReport:
    """Remove the asset entries no usable registered config or study uses, and the store's
    temporary leftovers; keep broken records' entries and everything that is not the store's."""
    scan = scan_registry(registry)
    plan = gc_plan(
        store,
        referenced_entries(scan),
        ASSET_FOLDERS,
        min_temp_age_s=min_temp_age_s,
        protected_partitions={broken.key for broken in scan.broken},
    )
    report = GcReport(scan, plan)
    if not dry_run:
        report.failed = gc_apply(store, plan)
    return report


@dataclass
class Unregistered:
    configs: list[str] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # "KEY: why" for members left registered


def _raw(registry: Registry, kind: str, key: str) -> dict[str, Any]:
    return registry.raw_record(kind, key) or {}


def _members(record: dict[str, Any]) -> list[str]:
    members = record.get("members")
    if not isinstance(members, list):
        return []
    return [m["partition_key"] for m in members if isinstance(m, dict) and "partition_key" in m]


def resolve_targets(registry: Registry, target: str) -> list[tuple[str, str]]:
    """(kind, key) pairs a KEY or FILE names; [] if none is registered.

    A file is matched by the key its content gives, else by the source path recorded at
    registration (so a file that no longer validates can still be unregistered).
    """
    for kind in ("study", "config"):
        if registry.has(kind, target):
            return [(kind, target)]
    path = Path(target)
    if not path.is_file():
        return []
    try:
        from tabs_assets.config.loading import resolve_config
        from tabs_assets.config.study import expand_study, is_study_file

        if is_study_file(path):
            key, kind = expand_study(path).partition_key, "study"
        else:
            key, kind = resolve_config([path], ()).partition_key, "config"
        if registry.has(kind, key):
            return [(kind, key)]
    except Exception:
        pass  # no longer valid: match by the recorded source
    wanted = path.resolve()
    found = []
    for kind, keys in (("study", registry.study_keys()), ("config", registry.config_keys())):
        for key in keys:
            source = str(_raw(registry, kind, key).get("source", ""))
            source_path = source.split(" (study ")[0]
            if source_path and Path(source_path).resolve() == wanted:
                found.append((kind, key))
    # A study's members carry its source too; the study itself is what the file names.
    if any(kind == "study" for kind, _ in found):
        found = [(kind, key) for kind, key in found if kind == "study"]
    return found


def unregister(registry: Registry, targets: Iterable[tuple[str, str]]) -> Unregistered:
    """Remove registry records (never store entries; the caller removes the partitions).

    A study also takes its members that no other study lists and that were not registered on
    their own (a member's record source ends in "(study NAME)" when a study registered it).
    """
    targets = list(dict.fromkeys(targets))
    done = Unregistered()
    studies = [key for kind, key in targets if kind == "study"]
    configs = [key for kind, key in targets if kind == "config"]
    other_studies = {
        key: set(_members(_raw(registry, "study", key)))
        for key in registry.study_keys()
        if key not in studies
    }
    for study_key in studies:
        record = _raw(registry, "study", study_key)
        name = (record.get("study") or {}).get("name") if isinstance(record, dict) else None
        for member in _members(record):
            users = sorted(k for k, members in other_studies.items() if member in members)
            source = str(_raw(registry, "config", member).get("source", ""))
            if users:
                done.kept.append(f"{member}: also in study {', '.join(users)}")
            elif name and not source.endswith(f"(study {name})") and source:
                done.kept.append(f"{member}: registered on its own ({source})")
            elif member not in configs:
                configs.append(member)
        registry.remove("study", study_key)
        done.studies.append(study_key)
    for key in configs:
        if registry.remove("config", key):
            done.configs.append(key)
    return done
