"""Where registered studies stand: members done, stale members, the report (`tabs-assets study
list` / `study show`, `tabs-assets list`)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabs_assets.graph.nodes import entry_address, study_store_key
from tabs_assets.registry.records import Registry, RegistryScan, StudyRecord
from tabs_assets.registry.upkeep import scan_registry
from tabs_assets.store.entries import Store


@dataclass(frozen=True)
class MemberStatus:
    key: str
    labels: dict[str, Any]
    done: bool  # the study's member_asset is in the store
    stale: bool  # re-materialized since the study table

    @property
    def state(self) -> str:
        if not self.done:
            return "missing"
        return "stale (re-materialized since the study table)" if self.stale else "done"


@dataclass(frozen=True)
class StudyStatus:
    key: str
    name: str
    member_asset: str
    members: list[MemberStatus]
    report: Path | None  # report.md when the study_report entry exists

    @property
    def done(self) -> int:
        return sum(member.done for member in self.members)

    @property
    def stale(self) -> list[str]:
        return [member.key for member in self.members if member.stale]


def study_status(
    instance: Any, store: Store, scan: RegistryScan, record: StudyRecord
) -> StudyStatus:
    """One study's members (in the store or not, stale or not) and its report."""
    from tabs_assets.defs.assets.study_report import members_changed_since_table

    asset = record.study.report.member_asset
    configs = {key: scan.configs[key] for key in record.member_keys}
    changed = set(members_changed_since_table(instance, record))
    members = []
    for member in record.members:
        key = member["partition_key"]
        done = store.entry_path(*entry_address(asset, configs[key])).is_dir()
        members.append(MemberStatus(key, dict(member.get("labels") or {}), done, key in changed))
    report = (
        store.entry_path("study_report", study_store_key("study_report", record.study, configs))
        / "report.md"
    )
    return StudyStatus(
        record.key, record.study.name, asset, members, report if report.is_file() else None
    )


def all_study_status(
    instance: Any, registry: Registry, store: Store
) -> tuple[list[StudyStatus], RegistryScan]:
    """Every usable registered study (broken records are in the scan, skipped here)."""
    scan = scan_registry(registry)
    studies = [study_status(instance, store, scan, record) for record in scan.studies.values()]
    return studies, scan
