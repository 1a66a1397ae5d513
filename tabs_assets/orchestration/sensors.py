"""A sensor that registers new or changed files in experiments/ when the daemon runs."""

import hashlib
import json

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from tabs_assets.config.loading import ConfigError
from tabs_assets.orchestration import settings
from tabs_assets.orchestration.partitions import config_partitions, study_partitions
from tabs_assets.orchestration.registration import Registered, register_file, yaml_files
from tabs_assets.orchestration.resources import StoreResource


@sensor(
    name="experiments_sensor",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Registers configs and studies added to or changed in experiments/.",
)
def experiments_sensor(
    context: SensorEvaluationContext, store: StoreResource
) -> SensorResult | SkipReason:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    registered = Registered()
    current: dict[str, str] = {}
    for path in yaml_files([settings.experiments_dir()]):
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
