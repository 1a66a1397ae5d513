"""The Dagster instance class named by dagster.yaml: Dagster's own, with its state in one folder.

dagster.yaml sits at the repository root and DAGSTER_HOME is the root, so ``dagster dev`` (which
warns about a dagster.yaml in the working directory that is not DAGSTER_HOME's) and every other
command read that one file. Dagster would keep its SQLite databases, step outputs and compute
logs right beside it (``history/``, ``schedules/``, ``storage/``, ...), and a ``base_dir`` written
in dagster.yaml is relative to each process's working directory (a Celery worker's, a Slurm
job's, a command run from elsewhere). This class only changes Dagster's defaults: the same
storage in ``.dagster_home/`` of a checkout (``settings.dagster_state_dir``; another home, such
as a test's, keeps Dagster's layout), as absolute paths that travel with the instance to every
process it starts, with the batching SQLite event log.
"""

from collections.abc import Mapping
from typing import Any

import yaml
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef, _event_logs_directory
from dagster._serdes import ConfigurableClassData

from tabs_assets import settings

EVENT_LOG_STORAGE = ("tabs_assets.defs.event_log", "BatchingSqliteEventLogStorage")


class StateDirInstance(DagsterInstance):
    """A DagsterInstance whose default storage lives in ``settings.dagster_state_dir()``."""

    @classmethod
    def config_schema(cls) -> Mapping[str, Any]:
        return {}  # no settings of its own (Dagster asks every custom instance class)

    @classmethod
    def config_defaults(cls, base_dir: str) -> Mapping[str, Any]:
        """Dagster's defaults for a home at the state folder of ``base_dir`` (DAGSTER_HOME, or
        Dagster's throwaway folder when it is unset), the event log being ours."""
        state = str(settings.dagster_state_dir(base_dir))
        defaults = dict(InstanceRef.config_defaults(state))
        defaults["event_log_storage"] = ConfigurableClassData(
            *EVENT_LOG_STORAGE, yaml.dump({"base_dir": _event_logs_directory(state)})
        )
        # What InstanceRef.from_dir builds from separately configured storages.
        parts = ("run_storage", "event_log_storage", "schedule_storage")
        defaults["storage"] = ConfigurableClassData(
            "dagster._core.storage.legacy_storage",
            "CompositeStorage",
            yaml.dump({part: defaults[part]._asdict() for part in parts}),
        )
        return defaults
