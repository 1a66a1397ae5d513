"""The config registry: every registered config and study, stored beside the store.

Partition keys index it, so a worker on another machine sharing the store root finds the
config of any partition it is asked to materialize.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabs_assets.config.experiment import PARTITION_KEY_PATTERN, ExperimentConfig
from tabs_assets.config.loading import ResolvedConfig, validate_model
from tabs_assets.config.study import ResolvedStudy, StudyConfig
from tabs_assets.files import write_file_durably
from tabs_assets.store.entries import REGISTRY_DIR
from tabs_assets.store.errors import is_unwritable, unwritable


class UnknownPartitionError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class BrokenRecord:
    kind: str  # "config" or "study"
    key: str
    path: Path
    reason: str

    def describe(self) -> str:
        return (
            f"broken {self.kind} record {self.path}: {self.reason} "
            f"(remove it with `tabs-assets unregister {self.key}`)"
        )


class BrokenRecordError(UnknownPartitionError):
    """A registry record that cannot be used (garbage JSON, a config that no longer validates,
    a data file that is gone). Commands skip it and report it; `tabs-assets unregister` removes it.
    """

    def __init__(self, record: BrokenRecord) -> None:
        super().__init__(record.describe())
        self.record = record


@dataclass
class RegistryScan:
    """Every record that can be used, and every one that cannot (with why)."""

    configs: dict[str, ExperimentConfig] = field(default_factory=dict)
    studies: dict[str, "StudyRecord"] = field(default_factory=dict)
    broken: list[BrokenRecord] = field(default_factory=list)


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
    """Durable, atomic; a read-only or full store raises a StoreError with a clear message.

    A record already on disk with the same text is left alone: registering a study again
    rewrites (and fsyncs) none of its unchanged member records."""
    text = json.dumps(data, indent=2, sort_keys=True)
    try:
        if path.read_text() == text:
            return
    except (OSError, UnicodeDecodeError):
        pass  # absent or unreadable: written below
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file_durably(path, text)
    except OSError as error:
        if is_unwritable(error):
            raise unwritable(error, "write the registry", path.parent) from None
        raise


def _short(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) < 600 else text[:600] + " ..."


_VALIDATED: dict[Path, tuple[tuple[int, int, int], ExperimentConfig]] = {}


class Registry:
    """Registered configs and studies under ``<store root>/registry``."""

    def __init__(self, store_root: Path) -> None:
        self.configs_dir = Path(store_root) / REGISTRY_DIR / "configs"
        self.studies_dir = Path(store_root) / REGISTRY_DIR / "studies"

    def register_config(
        self, resolved: ResolvedConfig, source: str, labels: dict[str, Any] | None = None
    ) -> str:
        """``labels``: a study member's sweep values and seed (what sets it apart)."""
        key = resolved.partition_key
        record = {
            "partition_key": key,
            "source": source,
            "config": resolved.config.model_dump(mode="json"),
            "sources": resolved.sources,
            **({"labels": labels} if labels is not None else {}),
        }
        _write_json(self.configs_dir / f"{key}.json", record)
        return key

    def register_study(self, resolved: ResolvedStudy, source: str) -> str:
        for member in resolved.members:
            self.register_config(
                member.resolved, f"{source} (study {resolved.study.name})", member.labels
            )
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
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise self._broken(kind, key, path, f"unreadable JSON ({_short(error)})") from None
        if not isinstance(record, dict):
            raise self._broken(kind, key, path, "not a JSON object")
        return record

    @staticmethod
    def _broken(kind: str, key: str, path: Path, reason: str) -> BrokenRecordError:
        return BrokenRecordError(BrokenRecord(kind, key, path, reason))

    def config(self, key: str) -> ExperimentConfig:
        """The registered config; BrokenRecordError (an UnknownPartitionError) if unusable.

        Validated once per process and version of the record file (a study step asks for
        each member's config many times)."""
        path = self.configs_dir / f"{key}.json"
        try:
            stat = path.stat()
            version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except OSError:
            version = None
        cached = _VALIDATED.get(path)
        if version is not None and cached is not None and cached[0] == version:
            return cached[1]
        config = self._validated_config(key, path)
        if version is not None:
            _VALIDATED[path] = (version, config)
        return config

    def _validated_config(self, key: str, path: Path) -> ExperimentConfig:
        record = self._record(self.configs_dir, key, "config")
        if not isinstance(record.get("config"), dict):
            raise self._broken("config", key, path, "no 'config' object")
        try:
            return validate_model(ExperimentConfig, record["config"], f"registry {key}")
        except Exception as error:  # any reason at all: the record is unusable, not the registry
            raise self._broken("config", key, path, _short(error)) from None

    def config_record(self, key: str) -> dict[str, Any]:
        return self._record(self.configs_dir, key, "config")

    def resolved(self, key: str) -> ResolvedConfig:
        """The registered config with the sources recorded when it was registered."""
        sources = self.config_record(key).get("sources")
        return ResolvedConfig(self.config(key), dict(sources) if isinstance(sources, dict) else {})

    def study(self, key: str) -> StudyRecord:
        record = self._record(self.studies_dir, key, "study")
        path = self.studies_dir / f"{key}.json"
        try:
            study = validate_model(StudyConfig, record["study"], f"registry {key}")
            members = record["members"]
            if not all(isinstance(m, dict) and "partition_key" in m for m in members):
                raise ValueError("'members' is not a list of {partition_key, labels}")
        except Exception as error:
            raise self._broken("study", key, path, _short(error)) from None
        return StudyRecord(key=key, study=study, members=members)

    def config_keys(self) -> list[str]:
        return sorted(p.stem for p in self.configs_dir.glob("*.json"))

    def study_keys(self) -> list[str]:
        return sorted(p.stem for p in self.studies_dir.glob("*.json"))

    def scan(self, check: Callable[[ExperimentConfig], Any] | None = None) -> RegistryScan:
        """Every record, usable or broken; never raises for a bad record.

        ``check(config)`` (optional) is called on each config and may raise to mark the record
        broken, e.g. computing its store keys (which reads a tabular data file).
        A study is broken when its own record or one of its members is.
        """
        scan = RegistryScan()
        for key in self.config_keys():
            try:
                config = self.config(key)
                if check is not None:
                    check(config)
            except BrokenRecordError as error:
                scan.broken.append(error.record)
                continue
            except Exception as error:
                scan.broken.append(
                    BrokenRecord("config", key, self._path("config", key), _short(error))
                )
                continue
            scan.configs[key] = config
        broken_configs = {b.key for b in scan.broken}
        for key in self.study_keys():
            try:
                record = self.study(key)
            except BrokenRecordError as error:
                scan.broken.append(error.record)
                continue
            bad = [m for m in record.member_keys if m in broken_configs or m not in scan.configs]
            if bad:
                scan.broken.append(
                    BrokenRecord(
                        "study",
                        key,
                        self._path("study", key),
                        f"{len(bad)} member record(s) broken or missing: {', '.join(bad[:5])}",
                    )
                )
                continue
            scan.studies[key] = record
        return scan

    def _path(self, kind: str, key: str) -> Path:
        return (self.configs_dir if kind == "config" else self.studies_dir) / f"{key}.json"

    def has(self, kind: str, key: str) -> bool:
        """A record of ``kind`` under ``key``; False for anything that is not a partition key
        (a path such as ``../x`` never reaches a file outside the registry)."""
        return bool(re.fullmatch(PARTITION_KEY_PATTERN, key)) and self._path(kind, key).is_file()

    def remove(self, kind: str, key: str) -> bool:
        """Delete one record (config or study); False if it was not there."""
        if not self.has(kind, key):
            return False
        path = self._path(kind, key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as error:
            if is_unwritable(error):
                raise unwritable(error, "change the registry", path.parent) from None
            raise
        return True

    def raw_record(self, kind: str, key: str) -> dict[str, Any] | None:
        """The record's JSON as stored, or None if unreadable (for unregistering)."""
        try:
            record = json.loads(self._path(kind, key).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None
