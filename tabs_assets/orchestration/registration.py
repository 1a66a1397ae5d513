"""Register config and study files: validate, store in the registry, add the partitions."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tabs_assets.config.loading import resolve_config
from tabs_assets.config.study import expand_study, is_study_file
from tabs_assets.orchestration.registry import Registry


@dataclass
class Registered:
    configs: list[str] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)


def yaml_files(paths: Sequence[Path]) -> list[Path]:
    """Files as given; directories expand to their *.yaml / *.yml files, recursively."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in {".yaml", ".yml"})
        else:
            found.append(path)
    return found


def register_file(registry: Registry, path: Path, overrides: Sequence[str] = ()) -> Registered:
    """Validate ``path`` (a config or a study) and record it; raises ConfigError before writing."""
    result = Registered()
    if is_study_file(path):
        resolved = expand_study(path)
        result.studies.append(registry.register_study(resolved, str(path)))
        result.configs += [member.partition_key for member in resolved.members]
    else:
        resolved = resolve_config([path], overrides)
        result.configs.append(registry.register_config(resolved, str(path)))
    return result


def add_partitions(instance: object, registered: Registered) -> None:
    """Idempotently add the partitions to a Dagster instance."""
    from tabs_assets.orchestration.partitions import config_partitions, study_partitions

    for definition, keys in (
        (config_partitions, registered.configs),
        (study_partitions, registered.studies),
    ):
        missing = [
            k for k in dict.fromkeys(keys) if not instance.has_dynamic_partition(definition.name, k)
        ]
        if missing:
            instance.add_dynamic_partitions(definition.name, missing)
