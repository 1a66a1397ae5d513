"""The config registry: every registered config and study, stored beside the store.

Partition keys index it, so a worker on another machine sharing the store root finds the
config of any partition it is asked to materialize.
"""

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.config.loading import ResolvedConfig, validate_model
from tabs_assets.config.study import ResolvedStudy, StudyConfig
from tabs_assets.orchestration.store import REGISTRY_DIR


class UnknownPartitionError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class StudyRecord:
    key: str
    study: StudyConfig
    members: list[dict[str, Any]]  # {"partition_key": ..., "labels": {...}}

    @property
    def member_keys(self) -> list[str]:
        return [member["partition_key"] for member in self.members]

    def member_configs(self, registry: "Registry") -> dict[str, ExperimentConfig]:
        return {key: registry.config(key) for key in self.member_keys}


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    temp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(temp, path)


class Registry:
    """Registered configs and studies under ``<store root>/registry``."""

    def __init__(self, store_root: Path) -> None:
        self.configs_dir = Path(store_root) / REGISTRY_DIR / "configs"
        self.studies_dir = Path(store_root) / REGISTRY_DIR / "studies"

    def register_config(self, resolved: ResolvedConfig, source: str) -> str:
        key = resolved.partition_key
        record = {
            "partition_key": key,
            "source": source,
            "config": resolved.config.model_dump(mode="json"),
            "sources": resolved.sources,
        }
        _write_json(self.configs_dir / f"{key}.json", record)
        return key

    def register_study(self, resolved: ResolvedStudy, source: str) -> str:
        for member in resolved.members:
            self.register_config(member.resolved, f"{source} (study {resolved.study.name})")
        key = resolved.partition_key
        record = {
            "partition_key": key,
            "source": source,
            "study": resolved.study.model_dump(mode="json"),
            "members": [
                {"partition_key": m.partition_key, "labels": m.labels} for m in resolved.members
            ],
        }
        _write_json(self.studies_dir / f"{key}.json", record)
        return key

    def _record(self, directory: Path, key: str, kind: str) -> dict[str, Any]:
        path = directory / f"{key}.json"
        if not path.is_file():
            raise UnknownPartitionError(
                f"{kind} partition {key!r} is not registered in {directory}; "
                f"register it with `tabs-assets register <file>`"
            )
        return json.loads(path.read_text())

    def config(self, key: str) -> ExperimentConfig:
        record = self._record(self.configs_dir, key, "config")
        return validate_model(ExperimentConfig, record["config"], f"registry {key}")

    def config_record(self, key: str) -> dict[str, Any]:
        return self._record(self.configs_dir, key, "config")

    def study(self, key: str) -> StudyRecord:
        record = self._record(self.studies_dir, key, "study")
        study = validate_model(StudyConfig, record["study"], f"registry {key}")
        return StudyRecord(key=key, study=study, members=record["members"])

    def config_keys(self) -> list[str]:
        return sorted(p.stem for p in self.configs_dir.glob("*.json"))

    def study_keys(self) -> list[str]:
        return sorted(p.stem for p in self.studies_dir.glob("*.json"))
