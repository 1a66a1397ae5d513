"""Registering files, the workflow: validate a config or study file, run the admission checks
(``admission.py``) and record it in the registry (``records.py``, the records on disk). The
caller adds its Dagster partitions (``defs/partitions.py``). Used by ``tabs-assets register``,
the sensor and the tests."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tabs_assets.config.errors import ConfigError
from tabs_assets.config.loading import ResolvedConfig, resolve_config
from tabs_assets.config.study import ResolvedStudy, expand_study, is_study_file
from tabs_assets.registry.records import Registry


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


@dataclass(frozen=True)
class Validated:
    """A file that passed every check, ready to be recorded."""

    path: Path
    config: ResolvedConfig | None = None
    study: ResolvedStudy | None = None


def _admit(configs: Sequence[ResolvedConfig], origin: str) -> None:
    """Data-file and resource checks of validated configs; a ConfigError lists every problem.

    A study's members share data sets: each distinct data set is checked once.
    """
    from tabs_assets.registry.admission import admission_problems

    problems: list[str] = []
    checked: dict = {}
    for resolved in configs:
        prefix = f"member {resolved.partition_key}: " if len(configs) > 1 else ""
        for problem in admission_problems(resolved.config, checked):
            if problem.startswith("dataset.path") and problem in problems:
                continue
            problems.append(prefix + problem)
    if problems:
        raise ConfigError(origin, problems)


def validate_config_file(path: Path, overrides: Sequence[str] = ()) -> ResolvedConfig:
    """Every check ``register`` makes of a config (not study) file; raises ConfigError."""
    resolved = resolve_config([path], overrides)
    _admit([resolved], str(path))
    return resolved


def validate_file(path: Path, overrides: Sequence[str] = ()) -> Validated:
    """Every check ``register`` makes, without writing anything; raises ConfigError."""
    if is_study_file(path):
        study = expand_study(path)
        _admit([member.resolved for member in study.members], str(path))
        return Validated(path=path, study=study)
    return Validated(path=path, config=validate_config_file(path, overrides))


def record(registry: Registry, validated: Validated) -> Registered:
    """Write a validated file's records to the registry."""
    result = Registered()
    if validated.study is not None:
        study = validated.study
        result.studies.append(registry.register_study(study, str(validated.path)))
        result.configs += [member.partition_key for member in study.members]
    elif validated.config is not None:
        result.configs.append(registry.register_config(validated.config, str(validated.path)))
    return result


def register_file(registry: Registry, path: Path, overrides: Sequence[str] = ()) -> Registered:
    """Validate ``path`` (a config or a study) and record it; raises ConfigError before writing."""
    return record(registry, validate_file(path, overrides))


def resolve_target(registry: Registry, target: str, overrides: Sequence[str]) -> ResolvedConfig:
    """A config file (+ overrides) or a registered partition key (+ overrides), through every
    check ``register`` makes (``validate_file``, ``_admit``): ``show-config`` gives a file the
    verdict ``register`` gives it, and never reads a data file ``register`` refuses (a FIFO, a
    device, one over the size limit) to hash it for the store keys."""
    path = Path(target)
    if path.is_file() or path.suffix in {".yaml", ".yml"}:
        if is_study_file(path):
            raise ConfigError(str(path), ["a study: show one of its members by partition key"])
        return validate_config_file(path, overrides)
    resolved = resolve_config([], overrides, origin=target, base=registry.resolved(target))
    _admit([resolved], target)
    return resolved
