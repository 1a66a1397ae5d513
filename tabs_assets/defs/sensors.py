"""A sensor that registers new or changed files in experiments/ when the daemon runs.

It registers what a user puts in the watched folder ($TABS_ASSETS_EXPERIMENTS, default
``experiments/``), not the example studies shipped in its ``studies/`` subfolder: those expand
to hundreds of partitions, some needing downloads. ``TABS_ASSETS_SENSOR_STUDIES=1`` watches
them too; ``tabs-assets register experiments/studies/X.yaml`` registers one by hand.
"""

import hashlib
import json
from pathlib import Path

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from tabs_assets import settings
from tabs_assets.config.errors import ConfigError
from tabs_assets.defs.partitions import config_partitions, study_partitions
from tabs_assets.defs.resources import StoreResource
from tabs_assets.registry.registration import Registered, register_file, yaml_files

EXAMPLE_STUDIES_DIR = "studies"


def watched_files() -> list[Path]:
    """The YAML files the sensor registers: the watched folder minus ``studies/`` (opt in)."""
    root = settings.experiments_dir()
    files = yaml_files([root]) if root.is_dir() else []
    if settings.sensor_registers_studies():
        return files
    return [p for p in files if p.relative_to(root).parts[0] != EXAMPLE_STUDIES_DIR]


@sensor(
    name="experiments_sensor",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Registers configs and studies added to or changed in experiments/ "
    "(the example studies in experiments/studies/ only with TABS_ASSETS_SENSOR_STUDIES=1).",
)
def experiments_sensor(
    context: SensorEvaluationContext, store: StoreResource
) -> SensorResult | SkipReason:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    registered = Registered()
    current: dict[str, str] = {}
    for path in watched_files():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        current[str(path)] = digest
        if seen.get(str(path)) == digest:
            continue
        try:
            result = register_file(store.registry(), path)
        except ConfigError as error:
            context.log.error(str(error))
            continue
        except Exception as error:  # a broken record or file is reported; the others go on
            context.log.error(f"{path}: skipped, {type(error).__name__}: {error}")
            continue
        registered.configs += result.configs
        registered.studies += result.studies
        context.log.info(f"registered {path}: {result.configs + result.studies}")
    if not registered.configs and not registered.studies:
        return SkipReason("no new or changed files in experiments/")
    requests = [config_partitions.build_add_request(sorted(set(registered.configs)))]
    if registered.studies:
        requests.append(study_partitions.build_add_request(sorted(set(registered.studies))))
    return SensorResult(dynamic_partitions_requests=requests, cursor=json.dumps(current))
